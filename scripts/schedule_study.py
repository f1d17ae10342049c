"""The schedule study behind conf/train/default.yaml: which training schedule makes the default run
tell the whole story (every within-group claim held in at least 2 of 3 seeds, no cross pair
associated) in the least time.

    python scripts/schedule_study.py run --workers 12 train.device=cuda train.dtype=float32
    python scripts/schedule_study.py run --schedules 700x32-lr1.5e-3 --experiments xiyouji --seeds 4,5,6
    python scripts/schedule_study.py table                  the table of the README, from the runs

`run` trains every schedule below once per seed (one `python -m glassbox.train` per run, --workers
at a time: a GPU takes a dozen of these small models at once) into

    outputs/schedule-study/<experiment>/<schedule>/s<seed>/    a run directory, as any other

and drops each run's snapshots once it ends (--keep-snapshots keeps them): the claims are judged from
metrics.jsonl, as `make replicate` judges them. `table` turns each schedule's seeds into a replicate
(replicate.md and replicate.json beside the seeds, by glassbox.replicate) and prints one row per
schedule; study.md and study.json land in outputs/schedule-study/.

Only the schedule varies: the model, the probes, the baselines and the thresholds are the
experiment's. The CPU minutes of the table are projected from the steps a schedule trains at the
seconds per step measured on 2 CPU cores (CPU_SECONDS_PER_STEP); the README's table says which
schedules were also timed there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from glassbox import fileio
from glassbox.analysis.claims import GROUP_CLAIM, HELD, LEVEL, MOVING_APART, NO_ASSOCIATION
from glassbox.replicate import replicate
from glassbox.report.markdown import table
from glassbox.run.layout import CHECKPOINT_DIR

# name -> train.* overrides, in the order `run` starts them (the longest first, then the likeliest).
SCHEDULES = {
    # what it takes: the GPU preset (conf/train/gpu.yaml), 8x the tokens of the old default
    "5000x64-gpu": "max_iters=5000 batch_size=64 learning_rate=1e-3 min_lr=1e-4 warmup_iters=200",
    # conf/train/default.yaml before the study
    "1200x32-lr1e-3": "max_iters=1200 batch_size=32 learning_rate=1e-3 min_lr=1e-4 warmup_iters=100",
    "600x32-lr2e-3": "max_iters=600 batch_size=32 learning_rate=2e-3 min_lr=2e-4 warmup_iters=50",
    "600x32-lr1e-3": "max_iters=600 batch_size=32 learning_rate=1e-3 min_lr=1e-4 warmup_iters=50",
    "400x32-lr2e-3": "max_iters=400 batch_size=32 learning_rate=2e-3 min_lr=2e-4 warmup_iters=40",
    "800x16-lr1e-3": "max_iters=800 batch_size=16 learning_rate=1e-3 min_lr=1e-4 warmup_iters=50",
    "1200x16-lr1e-3": "max_iters=1200 batch_size=16 learning_rate=1e-3 min_lr=1e-4 warmup_iters=100",
    "700x32-lr1.5e-3": "max_iters=700 batch_size=32 learning_rate=1.5e-3 min_lr=1.5e-4 warmup_iters=50",
    "200x32-lr1e-3": "max_iters=200 batch_size=32 learning_rate=1e-3 min_lr=1e-4 warmup_iters=20",
    "400x32-lr3e-3": "max_iters=400 batch_size=32 learning_rate=3e-3 min_lr=3e-4 warmup_iters=40",
    "600x32-lr2e-3-wd0": "max_iters=600 batch_size=32 learning_rate=2e-3 min_lr=2e-4 warmup_iters=50 weight_decay=0",
    "1200x16-lr1.5e-3": "max_iters=1200 batch_size=16 learning_rate=1.5e-3 min_lr=1.5e-4 warmup_iters=100",
    "2400x32-lr1e-3": "max_iters=2400 batch_size=32 learning_rate=1e-3 min_lr=1e-4 warmup_iters=100",
}
EXPERIMENTS = ("xiyouji", "shakespeare")
STUDY_DIR = Path("outputs/schedule-study")
# Seconds per step of the seed model on 2 CPU cores, all in (snapshots, validation, offline W&B), by
# batch size: 737 s for the 700 steps × 32 of the default (`make replicate`, seed 1, 2026-11-30),
# scaled by scripts/benchmark.py's step times (0.919 s at batch 32, 0.556 s at 16) for the others.
CPU_SECONDS_PER_STEP = {16: 0.637, 32: 1.053, 64: 2.106}


def schedule_settings(name: str) -> dict[str, float]:
    return {key: float(value) for key, value in (item.split("=") for item in SCHEDULES[name].split())}


def train_command(experiment: str, schedule: str, seed: int, run_dir: Path, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "glassbox.train",
        "--multirun",  # a sweep of one job: the schedule's directory reads as a sweep over seeds (glassbox.replicate)
        f"experiment={experiment}",
        f"seed={seed}",
        *(f"train.{item}" for item in SCHEDULES[schedule].split()),
        "wandb.mode=disabled",
        f"wandb.group=study-{experiment}-{schedule}",
        f"paths.output_dir={run_dir.parent}",
        f"hydra.sweep.dir={run_dir.parent}",
        f"hydra.sweep.subdir={run_dir.name}",
        "~hydra.callbacks.sweep_summary",  # the study's table replaces the sweep summary
        *overrides,
    ]


def run_study(args: argparse.Namespace) -> None:
    jobs = [
        (experiment, schedule, seed)
        for schedule in args.schedules
        for experiment in args.experiments
        for seed in args.seeds
        # the longest schedule runs for one experiment only: it answers "what does it take"
        if not (schedule == "5000x64-gpu" and experiment != "xiyouji")
    ]
    deadline = time.monotonic() + args.deadline_minutes * 60
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def one(job: tuple[str, str, int]) -> str:
        experiment, schedule, seed = job
        run_dir = args.out / experiment / schedule / f"s{seed}"
        if time.monotonic() > deadline:
            return f"skipped (deadline) {run_dir}"
        run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(run_dir / "stdout.log", "w") as out:
            done = subprocess.run(
                train_command(experiment, schedule, seed, run_dir, args.overrides), stdout=out, stderr=out, env=env
            )
        if not args.keep_snapshots:
            shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        return f"exit {done.returncode} after {time.monotonic() - started:.0f} s: {run_dir}"

    with ThreadPoolExecutor(args.workers) as pool:
        for line in pool.map(one, jobs):
            print(line, flush=True)


def seed_counts(claims: list[dict], test: str, kind: str | None, n_seeds: int) -> tuple[str, bool]:
    """Per seed, how many of the claims held; and whether each claim held in at least 2/3 of the seeds."""
    chosen = [c for c in claims if c["test"] == test and (kind is None or c["kind"] == kind) and c["a"] is not None]
    if not chosen:
        return "–", True
    per_seed = [sum(c["seeds"][i]["verdict"] == HELD for c in chosen) for i in range(n_seeds)]
    robust = all(c["n_held"] * 3 >= 2 * c["n_seeds"] for c in chosen)
    return " ".join(f"{n}/{len(chosen)}" for n in per_seed), robust


def weakest_within(claims: list[dict]) -> str:
    """The within pair held in the fewest seeds (then the lowest mean zf), with its zf in each seed."""
    within = [c for c in claims if c["test"] == LEVEL and c["kind"] == "within" and c["a"] is not None]
    if not within:
        return "–"
    c = min(within, key=lambda c: (c["n_held"], c["zf"]["mean"]))
    zfs = ", ".join(f"{seed['zf']:+.2f}" for seed in c["seeds"])
    return f"{c['a']}–{c['b']} {c['n_held']}/{c['n_seeds']} ({zfs})"


def cpu_minutes(name: str) -> float:
    s = schedule_settings(name)
    return s["max_iters"] * CPU_SECONDS_PER_STEP[int(s["batch_size"])] / 60


def study_table(args: argparse.Namespace) -> None:
    rows, data = [], []
    for experiment in args.experiments:
        for schedule in args.schedules:
            sweep_dir = args.out / experiment / schedule
            if not any(sweep_dir.glob("*/.hydra")):
                continue
            rep = replicate(sweep_dir, to_wandb=False)
            claims, n = rep["claims"], rep["n_seeds"]
            within, within_ok = seed_counts(claims, LEVEL, "within", n)
            no_assoc, no_assoc_ok = seed_counts(claims, NO_ASSOCIATION, None, n)
            apart, _ = seed_counts(claims, MOVING_APART, None, n)
            group = next((c for c in claims if c["a"] is None), None)
            weakest = weakest_within(claims)
            tells = within_ok and no_assoc_ok and n >= 3
            rows.append(
                [
                    experiment,
                    f"`{schedule}`",
                    f"{cpu_minutes(schedule):.1f}",
                    f"{rep['loss_val']['mean']:.3f}",
                    within,
                    no_assoc,
                    apart,
                    f"{group['n_held']}/{n}" if group else "–",
                    weakest,
                    "**yes**" if tells else "no",
                ]
            )
            data.append({"experiment": experiment, "schedule": schedule, "overrides": SCHEDULES[schedule], **rep})
    header = [
        "corpus",
        "schedule (steps×batch, peak lr)",
        "≈ CPU min",
        "val loss",
        "within pairs held, per seed",
        "cross: no association, per seed",
        "cross: moving apart, per seed",
        f"{GROUP_CLAIM} held",
        "weakest within pair: seeds held (zf per seed)",
        "every within ≥ 2/3, no association ≥ 2/3",
    ]
    text = table(header, rows)
    print(text)
    fileio.write_text(args.out / "study.md", text + "\n")
    fileio.write_json(args.out / "study.json", data)


def names(known: dict | None = None):
    """An argparse type: a comma-separated list of names, each one of `known` where given."""

    def parse(text: str) -> list[str]:
        chosen = text.split(",")
        unknown = [name for name in chosen if known is not None and name not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
        return chosen

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "table"])
    parser.add_argument("overrides", nargs="*", help="train-stage overrides for every run, e.g. train.device=cuda")
    parser.add_argument("--schedules", type=names(SCHEDULES), default=list(SCHEDULES), help="comma-separated")
    parser.add_argument("--experiments", type=names(), default=list(EXPERIMENTS), help="comma-separated")
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=1, help="runs at a time (default 1: a CPU machine)")
    parser.add_argument("--deadline-minutes", type=float, default=float("inf"), help="start no run after this")
    parser.add_argument("--keep-snapshots", action="store_true")
    parser.add_argument("--out", type=Path, default=STUDY_DIR)
    args = parser.parse_intermixed_args()
    if args.action == "run":
        run_study(args)
    else:
        study_table(args)


if __name__ == "__main__":
    main()
