"""A sweep's jobs and their statistics: final loss and probe-pair emergence per configuration.

Reads each job's .hydra/ files (overrides, config), run.json (size, status, probe pairs) and
metrics.jsonl records; jobs that differ only by `seed` form one configuration, summarized as
mean ± sd over its seeds. The plots' x-axis is chosen here too: the first swept key other than
the seed (the seed when nothing else was swept), as numbers or as categories as its values are.
report/sweep_summary.py turns the summary into markdown, plots and the explorer page.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from glassbox import metric_keys as keys
from glassbox.errors import GlassboxError
from glassbox.run.layout import METRICS, read_run_state
from glassbox.run.tracking import JsonlFile

SEED = "seed"  # the override that repeats a configuration
UNSET = "unset"  # a swept key's value in a job that did not set it
PAIR_STATS = ("cos", "z", "zf")  # the per-pair metrics summarized


@dataclass(frozen=True)
class Job:
    """One job of a sweep, as far as the summary needs it."""

    num: int
    run_dir: Path
    overrides: list[str]  # its command-line overrides, e.g. ["experiment=tiny", "model=tiny", "seed=1"]
    seed: int
    status: str  # run.json's: complete | running | interrupted | failed; "failed" without one
    n_params: int | None  # None when the job failed before its run began
    rows: list[dict[str, float]]  # its metrics.jsonl records, one per snapshot; [] when it logged none
    expect: dict[str, str]  # probe pair name -> the direction its cosine should take (run.json's probe_pairs)
    pair_labels: dict[str, str]  # probe pair name -> how plots write it, e.g. 说–道

    @property
    def final(self) -> dict[str, float]:
        """Its last metrics.jsonl record; {} when it logged none."""
        return self.rows[-1] if self.rows else {}


def read_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job Hydra started in sweep_dir, in job order."""
    return sorted(
        (read_job(hydra_dir.parent) for hydra_dir in Path(sweep_dir).glob("*/.hydra")), key=lambda job: job.num
    )


def sweep_jobs(sweep_dir: Path, what: str = "a sweep directory") -> list[Job]:
    """Every job of the sweep (read_jobs); a GlassboxError, asking for `what`, when sweep_dir holds none."""
    jobs = read_jobs(sweep_dir)
    if not jobs:
        raise GlassboxError(
            f"{sweep_dir} holds no sweep jobs (no */.hydra folders); pass {what}, outputs/<experiment>/sweeps/<time>"
        )
    return jobs


def read_job(run_dir: Path) -> Job:
    hydra_dir = run_dir / ".hydra"
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    state = read_run_state(run_dir)  # train records n_params there when the run starts
    try:
        records = JsonlFile(run_dir / METRICS).read()
    except json.JSONDecodeError:  # killed in the middle of a line: it cannot count as complete anyway
        records = []
    return Job(
        num=OmegaConf.load(hydra_dir / "hydra.yaml").hydra.job.num,
        run_dir=run_dir,
        overrides=list(OmegaConf.load(hydra_dir / "overrides.yaml")),
        seed=cfg.seed,
        status=state.get("status", "failed"),
        n_params=state.get("n_params"),
        rows=records,
        expect={pair["name"]: pair["expect"] for pair in state.get("probe_pairs", [])},
        pair_labels={pair["name"]: pair["label"] for pair in state.get("probe_pairs", [])},
    )


def mean_sd(values: list[float]) -> dict[str, Any]:
    """mean (None without values), sample sd (None below two values) and n."""
    return {
        "mean": statistics.fmean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def over_steps(runs: list[dict[int, float]]) -> dict[str, list]:
    """A value against step over seeds ({step: value} per run), at the steps every run logged:
    steps, mean, sd (None from one run) and each run's values (per_seed, in the order given)."""
    steps = sorted(set.intersection(*(set(run) for run in runs))) if runs else []
    stats = [mean_sd([run[step] for run in runs]) for step in steps]
    return {
        "steps": steps,
        "mean": [m["mean"] for m in stats],
        "sd": [m["sd"] for m in stats],
        "per_seed": [[run[step] for step in steps] for run in runs],
    }


def direction_matches(zf: list[float], expect: str) -> float | None:
    """Share of seeds whose matched z has the sign the pair's expectation names; None for "none".

    The sign alone: whether a claim *held* (zf and p past conf analysis.claims) is the report's call.
    """
    if expect == "none" or not zf:
        return None
    return sum(z > 0 if expect == "up" else z < 0 for z in zf) / len(zf)


def override_key(override: str) -> str:
    return override.split("=", 1)[0]


def sweep_axes(jobs: list[Job]) -> list[str]:
    """The override keys whose value differs between jobs, in command-line order (e.g. model, seed)."""
    keys = list(dict.fromkeys(override_key(o) for job in jobs for o in job.overrides))

    def value(job: Job, key: str) -> str | None:
        return next((o for o in job.overrides if override_key(o) == key), None)

    return [key for key in keys if len({value(job, key) for job in jobs}) > 1]


def axis_values(overrides: list[str], axes: list[str]) -> dict[str, str]:
    """{swept key: its value} of one job, e.g. {"model.pos_encoding": "rope"}, for the keys in `axes`."""
    return {override_key(o): o.split("=", 1)[1] for o in overrides if "=" in o and override_key(o) in axes}


def summarize(jobs: list[Job]) -> dict[str, Any]:
    """The sweep as plain data: its axes, the x-axis of its plots, every job, every configuration over seeds."""
    axes = sweep_axes(jobs)
    varied = [axis for axis in axes if axis != SEED]
    members: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        members.setdefault(tuple(o for o in job.overrides if override_key(o) != SEED), []).append(job)
    labels = {job.num: " ".join(o for o in job.overrides if override_key(o) in varied) or "all jobs" for job in jobs}
    configurations = [
        summarize_configuration(labels[group[0].num], axis_values(group[0].overrides, varied), group)
        for group in members.values()
    ]
    configurations.sort(key=lambda c: (c["n_params"] is None, c["n_params"] or 0, c["label"]))
    return {
        "axes": axes,
        "x_axis": x_axis(jobs, varied),
        "n_jobs": len(jobs),
        "n_complete": sum(job.status == "complete" for job in jobs),
        "configurations": configurations,
        "jobs": [
            {
                "job": job.num,
                "configuration": labels[job.num],
                "seed": job.seed,
                "status": job.status,
                "n_params": job.n_params,
                "step": job.final.get("step"),
                "loss_val": job.final.get(keys.LOSS_VAL),
                "overrides": job.overrides,
                "values": axis_values(job.overrides, varied),
                "pairs": {
                    name: {stat: job.final[keys.pair(stat, name)] for stat in PAIR_STATS}
                    for name in job.expect
                    if keys.pair("zf", name) in job.final
                },
            }
            for job in jobs
        ],
    }


def x_axis(jobs: list[Job], varied: list[str]) -> dict[str, Any]:
    """What the plots put on their x-axis: the first swept key other than the seed, its values in the
    order the sweep ran them, and whether they are numbers; the seed when nothing else was swept."""
    key = varied[0] if varied else SEED
    values = list(
        dict.fromkeys(
            str(job.seed) if key == SEED else axis_values(job.overrides, [key]).get(key, UNSET) for job in jobs
        )
    )
    numeric = all(_is_number(v) for v in values)
    if numeric:
        values.sort(key=float)
    return {"key": key, "values": values, "numeric": numeric}


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def summarize_configuration(label: str, values: dict[str, str], jobs: list[Job]) -> dict[str, Any]:
    """Final val loss and per-pair cos, z, zf (mean ± sd) over the complete jobs of one configuration,
    and every pair's zf against step (mean ± sd over those seeds)."""
    complete = [job for job in jobs if job.status == "complete"]
    pairs = {}
    for name, expect in complete[0].expect.items() if complete else ():
        if not all(keys.pair("zf", name) in job.final for job in complete):
            continue  # trained with analysis.at_snapshots=false, or another probe set
        per_stat = {stat: [job.final[keys.pair(stat, name)] for job in complete] for stat in PAIR_STATS}
        zf_key = keys.pair("zf", name)
        pairs[name] = {
            "expect": expect,
            "label": complete[0].pair_labels[name],
            **{stat: mean_sd(values) for stat, values in per_stat.items()},
            "direction": direction_matches(per_stat["zf"], expect),
            "zf_curve": over_steps([{r["step"]: r[zf_key] for r in job.rows if zf_key in r} for job in complete]),
        }
    return {
        "label": label,
        "values": values,
        "n_params": next((job.n_params for job in jobs if job.n_params is not None), None),
        "seeds": [job.seed for job in complete],
        "incomplete_jobs": [job.num for job in jobs if job.status != "complete"],
        "loss_val": mean_sd([job.final[keys.LOSS_VAL] for job in complete]),
        "pairs": pairs,
    }
