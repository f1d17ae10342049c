"""A run's analysis (analysis/replay.py) turned into its report folder and its W&B report.

The folder: analysis.json, the figures, report.md and explorer.html. W&B: tables of every snapshot
and the claims at the last step, every snapshot's attention patterns at its step, each claim's
verdict and zf and each mechanism's verdict and onset in the run's summary, and the report folder as an artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

from glassbox import fileio
from glassbox import metric_keys as keys
from glassbox.report import explorer
from glassbox.report.figures import attention_figure, figures, plotted_chars
from glassbox.report.plotting import CharLabels, missing_font_notice
from glassbox.report.sections import render
from glassbox.run.tracking import ReportLog

log = logging.getLogger(__name__)


def write_report(analysis: dict[str, Any], report_dir: Path) -> CharLabels:
    """Write the report folder; the fonts its plots could use go into the analysis as plot_labels first."""
    labels = CharLabels(plotted_chars(analysis))
    if labels.as_code_points:
        log.warning("%s", missing_font_notice(labels.as_code_points))
    analysis["plot_labels"] = {"font": labels.family, "as_code_points": labels.as_code_points}
    fileio.write_json(report_dir / "analysis.json", analysis)
    drawn = figures(analysis, labels)
    for name, png in drawn.items():
        fileio.write_bytes(report_dir / name, png)
    fileio.write_text(report_dir / "report.md", render(analysis, list(drawn)))
    fileio.write_text(report_dir / explorer.FILE_NAME, explorer.explorer_html(analysis))
    return labels


def report_log(analysis: dict[str, Any], labels: CharLabels, report_dir: Path, artifact: str) -> ReportLog:
    """The analysis as W&B shows it: its tables at the last step, the attention patterns, the verdicts."""
    snapshots = analysis["snapshots"]
    verdicts = {}
    for c in [*analysis["claims"], *analysis.get("offset_claims", [])]:
        claim = keys.claim_id(c["claim"], c["test"])
        verdicts |= {keys.verdict(claim): c["verdict"], keys.pair("zf", claim): c["zf"]}
    for m in analysis.get("mechanisms", {}).get("verdicts", []):
        verdicts[keys.verdict(m["mechanism"])] = m["verdict"]
        if m["onset"] is not None:
            verdicts[keys.onset(m["mechanism"])] = m["onset"]
    return ReportLog(
        tables={keys.table(name): table for name, table in table_rows(analysis).items()},
        step=snapshots[-1]["step"],
        images=_attention_images(snapshots, labels),
        summary=verdicts,
        artifact=artifact,
        files=sorted(p for p in report_dir.iterdir() if p.is_file()),
        metadata={
            "experiment": analysis["experiment"],
            "run_dir": analysis["run_dir"],
            "steps": [s["step"] for s in snapshots],
        },
    )


def _attention_images(snapshots: list[dict[str, Any]], labels: CharLabels) -> Iterator[tuple[str, bytes, str, int]]:
    """Every snapshot's attention patterns of the first prompt, drawn when W&B takes them."""
    with matplotlib.rc_context({"font.family": labels.families}):
        for snapshot in snapshots:
            if snapshot.get("attention", {}).get("prompts"):
                prompt = snapshot["attention"]["prompts"][0]["prompt"]
                caption = f"step {snapshot['step']}, prompt {prompt}"
                yield keys.ATTENTION_PATTERNS, attention_figure(snapshot, labels), caption, snapshot["step"]


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
