"""A training run's snapshots replayed through the analysis suites: the analysis as plain data.

`open_run` reads what every snapshot is measured with (the first usable snapshot's config and
vocabulary, the corpus, the probe inputs), `measure` runs the suites on each snapshot in turn, and
`describe` gathers the records with the run's losses, settings and provenance into the analysis
that report.md, the plots and analysis.json are made of. A snapshot that cannot be used (damaged,
cut short, or holding non-finite weights) is skipped with a warning and noted in the analysis.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from glassbox import fileio
from glassbox import metric_keys as keys
from glassbox.analysis.claims import claims, mechanisms, offset_claims
from glassbox.analysis.replicates import REPLICATE_JSON, verdicts_over_seeds
from glassbox.analysis.suites import Suite, SuiteInputs, run_suites, select_suites, with_final_snapshot
from glassbox.config.stages import Analyze
from glassbox.errors import GlassboxError
from glassbox.model import GPT
from glassbox.paths import PROJECT_ROOT
from glassbox.run.layout import METRICS, list_snapshots, read_run_state, replicate_link
from glassbox.run.resume import is_running_elsewhere
from glassbox.run.snapshots import Snapshot, check_vocab, load_snapshot, model_args
from glassbox.run.tracking import JsonlFile
from glassbox.text.tokens import TokenData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotRecord:
    """What the suites measured in one snapshot: its scalars (on the training-step axis) and each suite's result."""

    step: int
    scalars: dict[str, float]
    results: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The record as analysis.json keeps it: {"step", "scalars", <suite>: result, ...}."""
        return {"step": self.step, "scalars": self.scalars, **self.results}


@dataclass
class OpenRun:
    """A run ready to replay: the snapshots to measure, what they are measured with, what the first one told."""

    run_dir: Path
    data: TokenData
    inputs: SuiteInputs
    suites: dict[str, Suite]  # analysis.suites less those the corpus config gives no probes for
    snapshots: list[tuple[int, Path]]
    training_now: int | None  # the pid of the training still writing snapshots, if any
    train_run_id: str | None
    train_config: dict[str, Any]
    model: dict[str, Any]  # the model's GPTConfig and n_params
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"step", "reason"} per unusable snapshot


def open_run(settings: Analyze, run_dir: Path) -> OpenRun:
    """The run's snapshots and the suites' inputs, from its first usable snapshot; a GlassboxError without one."""
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
    data = TokenData(settings.paths.processed_dir)
    skipped: list[dict[str, Any]] = []
    first = None
    while first is None:  # the first usable snapshot: the run's config, its vocabulary, the probe inputs
        if not snapshots:
            raise GlassboxError(f"none of the snapshots of {run_dir} can be used (see the warnings above)")
        first = usable_snapshot(*snapshots[0], skipped)
        snapshots = snapshots if first else snapshots[1:]
    check_vocab(first, data.vocab.hash, data.dir)
    initial = first.weights["wte.weight"] if first.step == 0 else None  # what the dcos/ keys measure from
    inputs = SuiteInputs.from_config(settings.corpus, settings.analysis, data, first.model_args["block_size"], initial)
    model = first.model()
    suites = select_suites(settings.analysis.suites, inputs)
    if "layer_settling" in suites:  # each snapshot's layers are compared with the last snapshot's
        inputs = with_final_snapshot(inputs, *last_usable_model(snapshots))
    return OpenRun(
        run_dir=run_dir,
        data=data,
        inputs=inputs,
        suites=suites,
        snapshots=snapshots,
        training_now=training_now,
        train_run_id=first.wandb_run_id,
        train_config=first.config,
        model={**model_args(model), "n_params": model.num_params()},
        skipped=skipped,
    )


def measure(run: OpenRun) -> Iterator[SnapshotRecord]:
    """The suites' record of every usable snapshot, in step order (the unusable ones noted in run.skipped)."""
    for step, path in tqdm(run.snapshots, desc=f"analyze {run.run_dir.name}", unit="snapshot", dynamic_ncols=True):
        snapshot = usable_snapshot(step, path, run.skipped)
        if snapshot is None:
            continue
        check_vocab(snapshot, run.data.vocab.hash, run.data.dir)
        results = run_suites(snapshot.model(), run.inputs, run.suites)
        scalars = {key: value for result in results.values() for key, value in result.pop("scalars", {}).items()}
        yield SnapshotRecord(step, scalars, results)


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


def last_usable_model(snapshots: list[tuple[int, Path]]) -> tuple[GPT, int]:
    """The model of the last snapshot that can be used, and its step (those after it are noted by `measure`)."""
    for step, path in reversed(snapshots):
        snapshot = usable_snapshot(step, path, [])
        if snapshot is not None:
            return snapshot.model(), step
    raise GlassboxError("none of the snapshots can be used (see the warnings above)")


def describe(cfg: DictConfig, run: OpenRun, records: list[SnapshotRecord]) -> dict[str, Any]:
    """The analysis as plain data: what report.md, the plots and analysis.json are made of (but the
    plot_labels the report adds), its claims judged at the last snapshot."""
    probes = run.inputs.measurements.probes
    state = read_run_state(run.run_dir)
    analysis = {
        "experiment": cfg.name,
        "run_dir": str(run.run_dir),
        "status": state.get("status"),
        "dtype": state.get("dtype"),  # what training computed in (run.json; runs before it was recorded: None)
        "compiled": state.get("compiled"),  # whether its step ran torch.compiled (likewise)
        "corpus": cfg.corpus.name,
        "vocab_size": run.data.vocab.size,
        "model": run.model,
        "suites": list(run.suites),
        "probes": {
            "groups": probes.groups,
            "pairs": probes.describe_pairs(),
            "prompts": [p.text for p in run.inputs.prompts],
            "offsets": {s.name: [list(pair) for pair in s.pairs] for s in run.inputs.measurements.offsets},
        },
        "sampling": OmegaConf.to_container(cfg.analysis.predictions),
        "thresholds": OmegaConf.to_container(cfg.analysis.claims),
        "chance": OmegaConf.to_container(cfg.analysis.chance),
        "arithmetic": OmegaConf.to_container(cfg.analysis.arithmetic),
        "replicate": replicate_found(cfg),
        "reference": OmegaConf.to_container(cfg.corpus.reference) if cfg.corpus.get("reference") else {},
        "losses": [
            {key: r[key] for key in ("step", keys.LOSS_VAL, keys.LOSS_TRAIN) if key in r}
            for r in JsonlFile(run.run_dir / METRICS).read()
        ],
        "snapshots": [record.as_dict() for record in records],
        "provenance": {
            "corpus_sha256": run.data.meta["inputs"]["sha256"],
            "vocab_hash": run.data.vocab.hash,
            "train_wandb_run": state.get("wandb_run_id"),
            "code_commit": code_commit(),
            "train_config": run.train_config,
        },
    }
    analysis["claims"] = claims(analysis)
    held = OmegaConf.to_container(cfg.analysis.mechanisms.held)
    analysis["mechanisms"] = {
        "held": held,
        "verdicts": mechanisms([{"step": s["step"], **s["scalars"]} for s in analysis["snapshots"]], held),
    }
    analysis["offset_claims"] = offset_claims(analysis)
    return analysis | {"training_now": run.training_now, "skipped_snapshots": run.skipped}


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
