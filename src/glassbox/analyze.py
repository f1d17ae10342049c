"""Stage 3, `make analyze`: replay the analysis suites over every snapshot of a training run.

Reads  a training run's snapshots, metrics.jsonl (the losses) and run.json, and the prepared
       corpus of the experiment (its vocabulary must be the one the run was trained on).
Writes <run>/analysis/<time>/ (its scalars on the training-step axis, its W&B run, report/) and
       points <run>/report at that report folder (run/layout.py): readers always see one whole
       analysis, and a report already uploaded as an artifact is never rewritten.

A snapshot that cannot be used (damaged, cut short, or holding non-finite weights) is skipped with
a warning and the others are analysed; a run still training is analysed as far as its snapshots
go, and the console and the report say so and which steps that was.

The W&B run, named after the training run's (`<name>-analysis`), holds every scalar, the tables,
the attention patterns of every snapshot, the report as an artifact, and in its summary each
claim's verdict and zf.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import hydra
import matplotlib
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from glassbox import command_line, fileio
from glassbox import metric_keys as keys
from glassbox.analysis.suites import SuiteInputs, run_suites, select_suites
from glassbox.command_line import exits_cleanly
from glassbox.errors import GlassboxError
from glassbox.model import GPT
from glassbox.paths import CONF_DIR, PROJECT_ROOT
from glassbox.report import explorer
from glassbox.report.claims import LEVEL, check_settings, claims
from glassbox.report.figures import attention_figure, figures, plotted_chars
from glassbox.report.markdown import p_text
from glassbox.report.plotting import CharLabels, missing_font_notice
from glassbox.report.replicate import REPLICATE_JSON, verdicts_over_seeds
from glassbox.report.sections import render
from glassbox.run.layout import (
    METRICS,
    REPORT_DIR,
    list_snapshots,
    point_report,
    read_run_state,
    replicate_link,
    resolve_run_dir,
)
from glassbox.run.resume import is_running_elsewhere
from glassbox.run.snapshots import Snapshot, check_vocab, load_snapshot, model_args
from glassbox.run.tracking import JsonlFile, Tracker
from glassbox.text.tokens import TokenData

log = logging.getLogger(__name__)


def analysis_home(output_dir: str, name: str, run: str | None) -> str:
    """The run an analysis writes into (hydra.run.dir is `<this>/analysis/<time>`).

    Without a run to read, the experiment's folder: `analyze` then stops with a clear error,
    and Hydra has not made a real directory where the `latest` link belongs.
    """
    try:
        return str(resolve_run_dir(output_dir, name, run))
    except GlassboxError:
        return str(Path(output_dir) / name)


OmegaConf.register_new_resolver("glassbox.analysis_home", analysis_home)


def analyze(cfg: DictConfig, analysis_dir: Path) -> Path:
    """Run the selected suites on every snapshot of the run, then write and link its report."""
    run_dir = resolve_run_dir(cfg.paths.output_dir, cfg.name, cfg.run)
    check_settings(cfg.analysis.claims)
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        raise GlassboxError(f"{run_dir} holds no snapshots (checkpoints/step_*.pt): train it first")
    log.info(f"analysing {run_dir}: {len(snapshots)} snapshots, steps {snapshots[0][0]} to {snapshots[-1][0]}")
    state = read_run_state(run_dir)
    training_now = state["pid"] if is_running_elsewhere(state) else None
    if training_now:
        log.warning(
            "the run %s is still training (pid %s): analysing the snapshots it has saved so far, steps %s; "
            "analyse again when it has finished",
            run_dir,
            training_now,
            ", ".join(str(s) for s, _ in snapshots),
        )
    data = TokenData(cfg.paths.processed_dir)
    skipped: list[dict[str, Any]] = []
    first = None
    while first is None:  # the first usable snapshot: the run's config, its vocabulary, the probe inputs
        if not snapshots:
            raise GlassboxError(f"none of the snapshots of {run_dir} can be used (see the warnings above)")
        first = usable_snapshot(*snapshots[0], skipped)
        snapshots = snapshots if first else snapshots[1:]
    check_vocab(first, data.vocab.hash, data.dir)
    initial = first.weights["wte.weight"] if first.step == 0 else None  # what the dcos/ keys measure from
    inputs = SuiteInputs.from_config(cfg, data, first.model_args["block_size"], initial)
    suites = select_suites(list(cfg.analysis.suites), inputs)
    train_run_id = first.wandb_run_id
    train_config = first.config
    n_params = first.model().num_params()
    with open_dict(cfg):  # the training run's W&B group, also when it was a sweep's
        cfg.wandb.group = first.config["wandb"]["group"]
    del first
    report_dir = Path(analysis_dir) / REPORT_DIR
    train_name = read_run_state(run_dir).get("wandb_run_name", run_dir.name)  # runs before names: their folder

    with Tracker(
        cfg, analysis_dir, job_type="analysis", name=f"{train_name}-analysis", facts={"n_params": n_params}
    ) as tracker:
        records = []
        for step, path in tqdm(snapshots, desc=f"analyze {run_dir.name}", unit="snapshot", dynamic_ncols=True):
            snapshot = usable_snapshot(step, path, skipped)
            if snapshot is None:
                continue
            check_vocab(snapshot, data.vocab.hash, data.dir)
            model = snapshot.model()
            results = run_suites(model, inputs, suites)
            scalars = {key: value for result in results.values() for key, value in result.pop("scalars", {}).items()}
            tracker.log(scalars, step)
            tracker.use_artifact(f"model-{train_run_id}", "model", alias=f"step-{step}", step=step)
            records.append({"step": step, "scalars": scalars, **results})

        analysis = describe(cfg, run_dir, data, model, inputs, list(suites), records, train_config)
        for claim in analysis["claims"]:
            test = "" if claim["test"] == LEVEL else f", {claim['test']}"
            log.info(
                f"claim {claim['label']} ({claim['kind']}{test}, expected {claim['expect']}): {claim['verdict']} "
                f"at step {claim['step']} (zf {claim['zf']:+.2f}, p {p_text(claim['p'], claim['p_floor'])})"
            )
        analysis |= {"training_now": training_now, "skipped_snapshots": skipped}
        labels = CharLabels(plotted_chars(analysis))
        if labels.as_code_points:
            log.warning("%s", missing_font_notice(labels.as_code_points))
        analysis["plot_labels"] = {"font": labels.family, "as_code_points": labels.as_code_points}
        write_report(analysis, labels, report_dir)
        log_to_wandb(tracker, analysis, labels, report_dir, f"report-{train_run_id}")

    point_report(run_dir, report_dir)
    log.info(
        f"report: {run_dir / REPORT_DIR / 'report.md'} (wrote {analysis_dir}: this log, the W&B run and "
        f"report/, which {run_dir / REPORT_DIR} links to)"
    )
    if training_now:
        log.warning(
            f"the run is still training (pid {training_now}): the report covers steps "
            f"{', '.join(str(r['step']) for r in records)}; analyse again when it has finished"
        )
    return report_dir


def usable_snapshot(step: int, path: Path, skipped: list[dict[str, Any]]) -> Snapshot | None:
    """The snapshot at `path`, or None (noted in `skipped`, with a warning) if it is damaged or diverged."""
    try:
        snapshot = load_snapshot(path)
        snapshot.check_finite()
        return snapshot
    except GlassboxError as err:
        log.warning("skipping the snapshot at step %d: %s", step, err)
        skipped.append({"step": step, "reason": str(err)})
        return None


def describe(
    cfg: DictConfig,
    run_dir: Path,
    data: TokenData,
    model: GPT,
    inputs: SuiteInputs,
    suites: list[str],
    records: list[dict[str, Any]],
    train_config: dict[str, Any],
) -> dict[str, Any]:
    """The analysis as plain data: what report.md, the plots and analysis.json are made of.

    `suites` are the suites that ran: analysis.suites less those the corpus config gives no probes for."""
    probes = inputs.measurements.probes
    analysis = {
        "experiment": cfg.name,
        "run_dir": str(run_dir),
        "status": read_run_state(run_dir).get("status"),
        "corpus": cfg.corpus.name,
        "vocab_size": data.vocab.size,
        "model": {**model_args(model), "n_params": model.num_params()},
        "suites": suites,
        "probes": {
            "groups": probes.groups,
            "pairs": probes.describe_pairs(),
            "prompts": [p.text for p in inputs.prompts],
        },
        "sampling": OmegaConf.to_container(cfg.analysis.predictions),
        "thresholds": OmegaConf.to_container(cfg.analysis.claims),
        "chance": OmegaConf.to_container(cfg.analysis.chance),
        "replicate": replicate_found(cfg),
        "reference": OmegaConf.to_container(cfg.corpus.reference) if cfg.corpus.get("reference") else {},
        "losses": [
            {key: r[key] for key in ("step", keys.LOSS_VAL, keys.LOSS_TRAIN) if key in r}
            for r in JsonlFile(run_dir / METRICS).read()
        ],
        "snapshots": records,
        "provenance": {
            "corpus_sha256": data.meta["inputs"]["sha256"],
            "vocab_hash": data.vocab.hash,
            "train_wandb_run": read_run_state(run_dir).get("wandb_run_id"),
            "code_commit": code_commit(),
            "train_config": train_config,
        },
    }
    analysis["claims"] = claims(analysis)
    return analysis


def replicate_found(cfg: DictConfig) -> dict[str, Any] | None:
    """What the experiment's newest replicate (make replicate) found per claim; None without one."""
    link = replicate_link(cfg.paths.output_dir, cfg.name)
    path = link / REPLICATE_JSON
    return verdicts_over_seeds(fileio.read_json(path), str(link.resolve())) if path.exists() else None


def code_commit() -> str | None:
    """The analysing code's git commit (`-dirty` with uncommitted changes); None outside a git checkout.

    Training does not record its commit yet; this names the code that measured the snapshots, which
    need not be the code that trained them.
    """
    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def write_report(analysis: dict[str, Any], labels: CharLabels, report_dir: Path) -> None:
    fileio.write_json(report_dir / "analysis.json", analysis)
    drawn = figures(analysis, labels)
    for name, png in drawn.items():
        fileio.write_bytes(report_dir / name, png)
    fileio.write_text(report_dir / "report.md", render(analysis, list(drawn)))
    fileio.write_text(report_dir / explorer.FILE_NAME, explorer.explorer_html(analysis))


def log_to_wandb(
    tracker: Tracker, analysis: dict[str, Any], labels: CharLabels, report_dir: Path, artifact: str
) -> None:
    """Tables of every snapshot and the claims at the last step, every snapshot's attention patterns
    at its step, each claim's verdict and zf in the summary, and the report folder as an artifact."""
    if tracker.wandb_run is None:
        return
    snapshots, final = analysis["snapshots"], analysis["snapshots"][-1]["step"]
    for name, (columns, rows) in table_rows(analysis).items():
        tracker.log_table(keys.table(name), columns, rows, final)
    with matplotlib.rc_context({"font.family": labels.families}):
        for snapshot in snapshots:
            if snapshot.get("attention", {}).get("prompts"):
                prompt = snapshot["attention"]["prompts"][0]["prompt"]
                tracker.log_image(
                    keys.ATTENTION_PATTERNS,
                    attention_figure(snapshot, labels),
                    f"step {snapshot['step']}, prompt {prompt}",
                    snapshot["step"],
                )
    verdicts = {}
    for c in analysis["claims"]:
        claim = keys.claim_id(c["claim"], c["test"])
        verdicts |= {keys.verdict(claim): c["verdict"], keys.pair("zf", claim): c["zf"]}
    tracker.summary(verdicts)
    tracker.log_artifact(
        artifact,
        "report",
        sorted(p for p in report_dir.iterdir() if p.is_file()),
        metadata={
            "experiment": analysis["experiment"],
            "run_dir": analysis["run_dir"],
            "steps": [s["step"] for s in snapshots],
        },
    )


def table_rows(analysis: dict[str, Any]) -> dict[str, tuple[list[str], list[list]]]:
    """(columns, rows) of the neighbours, predictions, samples and logit-lens tables, every
    snapshot in one table with a step column (W&B filters and groups by it), and of the claims."""
    claim_columns = ["claim", "label", "test", "kind", "expect", "value", "z", "zf", "p", "verdict", "first_held"]
    tables = {
        "neighbours": (["step", "char", "rank", "neighbour", "cosine"], []),
        "predictions": (["step", "prompt", "rank", "next_char", "probability"], []),
        "samples": (["step", "prompt", "sample"], []),
        "logit_lens": (["step", "prompt", "layer", "rank", "char", "probability"], []),
        "claims": (claim_columns, [[c[column] for column in claim_columns] for c in analysis["claims"]]),
    }
    for snapshot in analysis["snapshots"]:
        step = snapshot["step"]
        for row in snapshot.get("embeddings", {}).get("neighbours", []):
            tables["neighbours"][1].extend(
                [step, row["char"], rank, char, cos] for rank, (char, cos) in enumerate(row["neighbours"], 1)
            )
        for prompt in snapshot.get("predictions", {}).get("prompts", []):
            tables["predictions"][1].extend(
                [step, prompt["prompt"], rank, char, prob] for rank, (char, prob) in enumerate(prompt["next"], 1)
            )
            tables["samples"][1].append([step, prompt["prompt"], prompt["sample"]])
        for prompt in snapshot.get("logit_lens", {}).get("prompts", []):
            for layer in prompt["layers"]:
                tables["logit_lens"][1].extend(
                    [step, prompt["prompt"], layer["layer"], rank, char, prob]
                    for rank, (char, prob) in enumerate(layer["top"], 1)
                )
    return {name: table for name, table in tables.items() if table[1]}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    analyze(cfg, Path(HydraConfig.get().runtime.output_dir))


def cli() -> None:
    """The `glassbox-analyze` command, as `python -m glassbox.analyze` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
