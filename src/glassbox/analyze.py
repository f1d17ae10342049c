"""Stage 3, `make analyze`: replay the analysis suites over every snapshot of a training run.

Reads  a training run's snapshots, metrics.jsonl (the losses) and run.json, and the prepared
       corpus of the experiment (its vocabulary must be the one the run was trained on).
Writes <run>/analysis/<time>/ (its scalars on the training-step axis, its W&B run, report/) and
       points <run>/report at that report folder (run/layout.py): readers always see one whole
       analysis, and a report already uploaded as an artifact is never rewritten.

A snapshot that cannot be used (damaged, cut short, or holding non-finite weights) is skipped with
a warning and the others are analysed; a run still training is analysed as far as its snapshots
go, and the console and the report say so and which steps that was (analysis/replay.py).

The W&B run, named after the training run's (`<name>-analysis`), holds every scalar, the tables,
the attention patterns of every snapshot, the report as an artifact, and in its summary each
claim's verdict and zf (report/run_report.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from glassbox import command_line
from glassbox.analysis.claims import LEVEL
from glassbox.analysis.replay import describe, measure, open_run
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.errors import GlassboxError
from glassbox.paths import CONF_DIR
from glassbox.report.markdown import p_text
from glassbox.report.run_report import report_log, write_report
from glassbox.run.layout import REPORT_DIR, point_report, read_run_state, resolve_run_dir
from glassbox.run.tracking import Tracker

log = logging.getLogger(__name__)


def analyze(cfg: DictConfig, analysis_dir: Path) -> Path:
    """Run the selected suites on every snapshot of the run, then write and link its report."""
    # the config this stage reads: the run, analysis.claims (and, in open_run and describe, the rest)
    asked = validate(cfg, "analyze")
    run_dir = resolve_run_dir(asked.paths.output_dir, asked.name, asked.run)

    run = open_run(asked, run_dir)
    with open_dict(cfg):  # the training run's W&B group, also when it was a sweep's
        cfg.wandb.group = run.train_config["wandb"]["group"]
    train_name = read_run_state(run_dir).get("wandb_run_name", run_dir.name)  # runs before names: their folder
    report_dir = Path(analysis_dir) / REPORT_DIR
    facts = {"n_params": run.model["n_params"]}
    with Tracker(cfg, analysis_dir, job_type="analysis", name=f"{train_name}-analysis", facts=facts) as tracker:
        records = []
        for record in measure(run):
            tracker.log(record.scalars, record.step)
            tracker.use_artifact(f"model-{run.train_run_id}", "model", alias=f"step-{record.step}", step=record.step)
            records.append(record)
        analysis = describe(cfg, run, records)
        for claim in [*analysis["claims"], *analysis["offset_claims"]]:
            test = "" if claim["test"] == LEVEL else f", {claim['test']}"
            log.info(
                f"claim {claim['label']} ({claim['kind']}{test}, expected {claim['expect']}): {claim['verdict']} "
                f"at step {claim['step']} (zf {claim['zf']:+.2f}, p {p_text(claim['p'], claim['p_floor'])})"
            )
        labels = write_report(analysis, report_dir)
        tracker.log_report(report_log(analysis, labels, report_dir, f"report-{run.train_run_id}"))

    point_report(run_dir, report_dir)
    log.info(
        f"report: {run_dir / REPORT_DIR / 'report.md'} (wrote {analysis_dir}: this log, the W&B run and "
        f"report/, which {run_dir / REPORT_DIR} links to)"
    )
    if run.training_now:
        log.warning(
            f"the run is still training (pid {run.training_now}): the report covers steps "
            f"{', '.join(str(r.step) for r in records)}; analyse again when it has finished"
        )
    return report_dir


def analysis_home(output_dir: str, name: str, run: str | None) -> str:
    """The run an analysis writes into (conf/analyze.yaml: hydra.run.dir is `<this>/analysis/<time>`).

    Without a run to read, the experiment's folder: `analyze` then stops with a clear error,
    and Hydra has not made a real directory where the `latest` link belongs.
    """
    try:
        return str(resolve_run_dir(output_dir, name, run))
    except GlassboxError:
        return str(Path(output_dir) / name)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    analyze(cfg, Path(HydraConfig.get().runtime.output_dir))


def cli() -> None:
    """The `glassbox-analyze` command, as `python -m glassbox.analyze` runs it. Only this stage's config
    (conf/analyze.yaml) names its run directory with `glassbox.analysis_home`: it is registered here."""
    OmegaConf.register_new_resolver("glassbox.analysis_home", analysis_home)
    command_line.run(main)


if __name__ == "__main__":
    cli()
