"""A replicate: one experiment trained once per seed, every claim judged in every seed.

Plain data in (each seed's metrics.jsonl rows, the probe pairs and groups, analysis.claims and
analysis.chance, the corpus's reference figures), plain data out (replicate.json). Each seed's
claims are judged by analysis/claims.py's `judge`, the very function the single-run analysis uses,
on the metrics training logged at every snapshot; then, per claim: in how many seeds it held at the
end, its zf as mean ± sd, the step it first held at in each seed and whether it stayed held, and
its zf against step with a band over seeds. report/replicate.py words and draws it.

A replicate is finished when every seed asked for (the sweep's `seed=` override) has completed; until
then it says which seeds finished, which stopped (and at which step) and which never started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from glassbox import metric_keys as keys
from glassbox.analysis.claims import HELD, MOVING_APART, NO_ASSOCIATION, ClaimResult, claim_list, judge, judge_mechanism
from glassbox.analysis.sweeps import SEED, Job, mean_sd, over_steps, sweep_axes, sweep_jobs
from glassbox.errors import GlassboxError
from glassbox.run.layout import read_run_state
from glassbox.run.resume import QUIET_SETTINGS

REPLICATE_JSON = "replicate.json"  # the replicate as plain data, in the sweep directory
MULTIRUN_CONFIG = "multirun.yaml"  # Hydra's, in the sweep directory: the command line that started the sweep


@dataclass(frozen=True)
class SeedRun:
    """One seed's run of the replicate: its job, its status, its metrics.jsonl rows and how long it trained."""

    seed: int
    job: int
    status: str
    rows: list[dict[str, Any]]
    train_seconds: float | None = None  # run.json's: None until the run completes
    last_snapshot: int | None = None  # run.json's: the step an interrupted run can resume from


def seeds_phrase(n_held: int, n_seeds: int, what: str = "held") -> str:
    """The wording follows the numbers: "held in 3 of 3 seeds", "held in 1 of 3: not robust"."""
    if 0 < n_held <= n_seeds / 2:
        return f"{what} in {n_held} of {n_seeds}: not robust"
    return f"{what} in {n_held} of {n_seeds} seed{'s' if n_seeds > 1 else ''}"


def replicate_jobs(sweep_dir: Path) -> list[Job]:
    """The jobs of a sweep over the seed alone; a GlassboxError for no jobs, or jobs differing by more."""
    jobs = sweep_jobs(sweep_dir, "the sweep directory of a replicate")
    others = [axis for axis in sweep_axes(jobs) if axis != SEED]
    if others:
        raise GlassboxError(
            f"the jobs of {sweep_dir} differ by {', '.join(others)}, not only by their seed: a "
            "replicate is one configuration over seeds. Its summary.md compares the configurations; "
            "run `make replicate` once per configuration."
        )
    return jobs


def seed_runs(jobs: list[Job]) -> list[SeedRun]:
    """Every job as a seed's run, with how long it trained and its last snapshot (run.json's)."""
    states = [read_run_state(job.run_dir) for job in jobs]
    return [
        SeedRun(job.seed, job.num, job.status, job.rows, state.get("train_seconds"), state.get("last_snapshot"))
        for job, state in zip(jobs, states)
    ]


def asked_seeds(sweep_dir: Path, jobs: list[Job]) -> list[int]:
    """The seeds the sweep was started with (`seed=1,2,3` in Hydra's multirun.yaml); the jobs' own
    seeds where the sweep directory has no such file (a sweep put together by hand)."""
    path = sweep_dir / MULTIRUN_CONFIG
    task = OmegaConf.load(path).hydra.overrides.task if path.exists() else []
    for override in OverridesParser.create().parse_overrides(list(task)):
        if override.key_or_group == SEED:
            return list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    return [job.seed for job in jobs]


def trained_overrides(job: Job) -> list[str]:
    """What was trained: the job's overrides but the seed and the settings that change no number (paths, W&B)."""
    return [o for o in job.overrides if o.split("=", 1)[0] != SEED and not o.startswith(QUIET_SETTINGS)]


def summarize_replicate(
    runs: list[SeedRun],
    asked: list[int],
    pairs: list[dict[str, Any]],
    groups: dict[str, list[str]],
    settings: dict[str, float],
    chance: dict[str, int] | None,
    reference: dict[str, Any],
    held: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The replicate as plain data (replicate.json): every claim over the complete seeds, and with
    analysis.mechanisms.held every mechanism the seeds logged (`mechanisms_over_seeds`).

    asked: the seeds the sweep was started with (`asked_seeds`); pairs: run.json's probe_pairs
    (ProbeSet.describe_pairs); groups: corpus.probes.groups;
    settings: analysis.claims; chance: analysis.chance; reference: corpus.reference.
    """
    complete = [run for run in runs if run.status == "complete" and run.rows]
    claims = claim_list(pairs, groups, complete[0].rows[-1]) if complete else []
    articles = reference.get("cosine", {})
    result = []
    for claim in claims:
        judged = [judge(claim, run.rows, settings, chance) for run in complete]
        n_held = sum(j.verdict == HELD for j in judged)
        entry = {
            "claim": claim.name,
            "test": claim.test,
            "a": claim.a,
            "b": claim.b,
            "kind": claim.kind,
            "expect": claim.expect,
            "n_seeds": len(judged),
            "n_held": n_held,
            "over_seeds": seeds_phrase(n_held, len(judged)),
            "zf": mean_sd([j.zf for j in judged]),
            "value": mean_sd([j.value for j in judged]),
            "article": articles.get(claim.name, {}) if claim.a is not None else {},
            "seeds": [_seed_entry(run, j) for run, j in zip(complete, judged)],
            "curve": over_steps(
                [{row["step"]: row[claim.zf_key] for row in run.rows if claim.measured_in(row)} for run in complete]
            ),
        }
        if claim.expect == "none":
            n_differ = sum(j.differs for j in judged)
            entry["n_differs"] = n_differ
            entry["over_seeds"] = seeds_phrase(n_differ, len(judged), "differs from chance")
        if claim.test == MOVING_APART:
            entry["change"] = mean_sd([j.change for j in judged])
        result.append(entry)
    steps = sorted({run.rows[-1]["step"] for run in complete})
    losses = [run.rows[-1][keys.LOSS_VAL] for run in complete]
    minutes = [None if run.train_seconds is None else run.train_seconds / 60 for run in complete]
    return {
        "seeds": [run.seed for run in complete],
        "n_seeds": len(complete),
        "seeds_asked": asked,
        "finished": {run.seed for run in complete} >= set(asked),
        "not_complete": [_not_complete_entry(run) for run in runs if run not in complete],
        "not_started": [seed for seed in asked if seed not in {run.seed for run in runs}],
        "step": steps[-1] if steps else None,
        "steps_differ": len(steps) > 1,
        "thresholds": settings,
        "chance": chance,
        "reference_source": reference.get("source"),
        "loss_val": mean_sd(losses),
        "seed_losses": losses,
        "train_minutes": mean_sd([m for m in minutes if m is not None]),
        "seed_minutes": minutes,
        "claims": result,
        "mechanisms": mechanisms_over_seeds(complete, held) if held else [],
    }


def _not_complete_entry(run: SeedRun) -> dict[str, Any]:
    """A seed left out: its job and status, and for a stopped run the step it can resume from."""
    entry = {"job": run.job, "seed": run.seed, "status": run.status}
    return entry | ({"step": run.last_snapshot} if run.status == "interrupted" else {})


def mechanisms_over_seeds(runs: list[SeedRun], held: dict[str, float]) -> list[dict[str, Any]]:
    """Per mechanism every seed logged (metric_keys.MECHANISMS): in how many seeds it held at the end,
    and each seed's verdict, onset step and (a head role) best head, judged as the run report judges it."""
    result = []
    for mechanism in keys.MECHANISMS:
        judged = [judge_mechanism(mechanism, run.rows, held) for run in runs]
        if not judged or None in judged:
            continue
        n_held = sum(j["verdict"] == HELD for j in judged)
        seeds = [
            {"seed": run.seed, "verdict": j["verdict"], "onset": j["onset"], "head": j["points"][-1].get("head")}
            for run, j in zip(runs, judged)
        ]
        result.append(
            {"mechanism": mechanism, "n_held": n_held, "over_seeds": seeds_phrase(n_held, len(judged)), "seeds": seeds}
        )
    return result


def _seed_entry(run: SeedRun, judged: ClaimResult) -> dict[str, Any]:
    """One seed's verdict of a claim and the numbers behind it; for "no association", where it failed."""
    entry = {
        "seed": run.seed,
        "job": run.job,
        **{key: getattr(judged, key) for key in ("verdict", "value", "zf", "p", "p_floor", "first_held", "stayed")},
    }
    if judged.test == NO_ASSOCIATION:
        entry["broke_at"] = None if judged.broke is None else judged.broke["step"]
    return entry


def verdicts_over_seeds(data: dict[str, Any], where: str) -> dict[str, Any]:
    """What the single-run report shows of a replicate (analyze keeps it in analysis.json)."""
    return {
        "dir": where,
        "seeds": data["seeds"],
        "n_seeds": data["n_seeds"],
        "step": data["step"],
        "overrides": data["overrides"],
        "claims": [{"claim": c["claim"], "test": c["test"], "over_seeds": c["over_seeds"]} for c in data["claims"]],
    }
