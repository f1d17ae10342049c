"""How fast the train stage is on this machine, what the emergence metrics cost it, and how
much the KV cache speeds up generation.

    python scripts/benchmark.py                         the seed model on 西游记, 50 steps per run
    python scripts/benchmark.py --iters 300 model=big train.device=cuda    any train-stage override
    python scripts/benchmark.py --only generation       the KV cache's decode speed-up alone
    make benchmark ARGS="--iters 40 experiment=shakespeare"
    python scripts/benchmark.py --only nanogpt --nanogpt ~/src/nanoGPT   glassbox against nanoGPT's train.py

It runs the real `train()` twice on the experiment's schedule scaled down to --iters steps:
once with the emergence metrics (analysis.at_snapshots=true) and once without, timing the
calls that matter inside each run (evaluation, metrics, snapshot writes). From those it prints
tokens/s, the model FLOP utilisation (MFU) against a matmul peak measured here (a datasheet
peak says nothing about a shared 2-core VM), and the metrics' overhead. A scaled-down schedule
has more snapshots per step than the full one, so its own overhead overstates the full run's;
the verdict uses the full schedule, projected from the per-call times.

Generation: decode tokens/s (new tokens after the first, per second; batch 1, greedy, float32, random
weights) with and without the KV cache, for the experiment's model at 128 new tokens and for the same
model with block_size 512 at 512 new tokens, each from a one-character prompt so that the whole
generation fits the block (no re-encoding); the median of --repeats runs. Beside them, the KV cache's bytes at
the end (model.n_kv_head shrinks it: compare model.n_kv_head=4,2,1).

Against nanoGPT (--nanogpt, a checkout of github.com/karpathy/nanoGPT; its code is not part of glassbox):
nanoGPT's own `train.py` (float32: it runs no autocast on a CPU) and glassbox's train stage in float32 and as
the experiment trains here (train.dtype, train.compile: bf16 autocast, eager and compiled, where auto picks
them), each a fresh process on the same data and model sizes, alternated over --rounds rounds of --iters
steps; tokens/s is the median over the steps after the first two (start-up, nanoGPT's first evaluation,
compiling), MFU is against the measured matmul peak of each run's own dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from glassbox import metric_keys as keys
from glassbox.analysis.measurements import Measurements
from glassbox.command_line import exits_cleanly
from glassbox.config import validate
from glassbox.device import resolve_device
from glassbox.generation import Throughput, generation_steps, rate, synchronize, timed_steps
from glassbox.model import GPT, GPTConfig, describe_heads
from glassbox.paths import CONF_DIR
from glassbox.probes.mechanisms import MechanismProbe
from glassbox.run import distributed
from glassbox.text.tokens import TokenData
from glassbox.train import train
from glassbox.training import loop
from glassbox.training.schedule import compile_choice, compute_dtype, snapshot_steps

OVERHEAD_TARGET = 0.03
# (label, extra overrides, new tokens) of each generation measurement
GENERATION_CASES = [("its own block", [], 128), ("block_size 512", ["model.block_size=512"], 512)]
# Functions train() calls at snapshots, by where it looks them up; each is timed on every call.
WATCHED = {
    "eval": (loop, "mean_loss"),
    "metrics": (Measurements, "of"),
    "metrics setup": (Measurements, "from_config"),
    "mechanisms": (MechanismProbe, "metrics"),  # inside "metrics": the head-role and ICL part of it
    "snapshot": (loop.Trainer, "_save"),
    "save": (loop, "save_snapshot"),
}


def time_calls(function, device: torch.device, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of function(), after one untimed warm-up call."""
    function()
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


class CallTimer:
    """Wall time of each call to the WATCHED functions while `watching()` is active."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.first_start: dict[str, float] = {}

    def _timed(self, label: str, function):
        def timed(*args, **kwargs):
            synchronize(self.device)
            start = time.perf_counter()
            self.first_start.setdefault(label, start)
            result = function(*args, **kwargs)
            synchronize(self.device)
            self.seconds[label].append(time.perf_counter() - start)
            return result

        return timed

    def watching(self) -> ExitStack:
        stack = ExitStack()
        for label, (owner, name) in WATCHED.items():
            stack.enter_context(mock.patch.object(owner, name, self._timed(label, getattr(owner, name))))
        return stack

    def total(self, label: str) -> float:
        return sum(self.seconds[label])

    def mean(self, label: str) -> float:
        return statistics.mean(self.seconds[label]) if self.seconds[label] else 0.0


def compose_train_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=overrides)


def scaled_schedule(tc: DictConfig, iters: int) -> list[str]:
    """Overrides that shrink the run to `iters` steps, every count of the schedule scaled alike.

    The evaluation batches shrink too: snapshots come more often per step in the short run, and
    full-size evaluations at each would make it mostly evaluation.
    """
    factor = iters / tc.max_iters
    scaled = {
        "max_iters": iters,
        "warmup_iters": max(1, round(tc.warmup_iters * factor)),
        "eval_iters": max(1, round(tc.eval_iters * factor)),
        "snapshots.log_spaced_until": max(1, round(tc.snapshots.log_spaced_until * factor)),
        "snapshots.every": max(1, round(tc.snapshots.every * factor)) if tc.snapshots.every > 0 else 0,
    }
    return [f"train.{key}={value}" for key, value in scaled.items()]


def schedule_of(tc: DictConfig) -> list[int]:
    return snapshot_steps(tc.max_iters, tc.snapshots.log_spaced_until, tc.snapshots.every)


def matmul_peak(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> tuple[float, int]:
    """Best FLOP/s of one square matmul (2n³ FLOPs), big enough to time reliably on this device."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / min(time_calls(lambda: a @ b, device, repeats)), n


@dataclass
class TimedRun:
    wall: float  # seconds of the whole train() call
    setup: float  # seconds before the first snapshot: data, model, metric baselines, W&B
    calls: CallTimer


def timed_train(cfg: DictConfig, run_dir: Path, device: torch.device) -> TimedRun:
    calls = CallTimer(device)
    with calls.watching():
        start = time.perf_counter()
        train(cfg, run_dir)
        wall = time.perf_counter() - start
    return TimedRun(wall, calls.first_start["eval"] - start, calls)


def time_measurements_of_seed(overrides: list[str], device: torch.device, repeats: int = 5) -> float:
    """Median seconds of one Measurements.of(model) on the (untrained) seed model of this corpus."""
    cfg = compose_train_config([*overrides, "model=seed"])
    data = TokenData(cfg.paths.processed_dir)
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=data.vocab.size, **cfg.model)).to(device)
    settings = validate(cfg, "train")
    measurements = Measurements.from_config(settings.corpus, settings.analysis, data, cfg.model.block_size)
    return statistics.median(time_calls(lambda: measurements.of(model), device, repeats))


def decode_rate(model: GPT, new_tokens: int, use_cache: bool, device: torch.device) -> float:
    """Decode tokens/s of one greedy generation from a one-token prompt: the tokens after the first over
    their seconds (the first step is the prefill, which is not decoding)."""
    steps = generation_steps(
        model, torch.zeros(1, 1, dtype=torch.long, device=device), new_tokens, 0.0, use_cache=use_cache
    )
    speed = Throughput()
    for _ in timed_steps(steps, speed, device):
        pass
    return rate(speed.decode_tokens, speed.decode_seconds)


def generation_benchmark(overrides: list[str], vocab_size: int, device: torch.device, repeats: int) -> None:
    """Print decode tokens/s with and without the KV cache, and their ratio, for each GENERATION_CASES entry."""
    print(f"\n--- generation: decode tokens/s, batch 1, greedy, float32, median of {repeats}")
    for label, extra, new_tokens in GENERATION_CASES:
        mc = compose_train_config([*overrides, *extra]).model
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=vocab_size, **mc)).to(device).eval()
        decode_rate(model, 8, True, device)  # warm-up: lazy initialisation, kernel selection
        rates = {
            use_cache: statistics.median(decode_rate(model, new_tokens, use_cache, device) for _ in range(repeats))
            for use_cache in (True, False)
        }
        past_block = " (past block_size both re-encode the window each step)" if new_tokens > mc.block_size else ""
        cached_tokens = min(new_tokens, mc.block_size)  # the one-token prompt and every token drawn but the last
        print(
            f"{model.num_params() / 1e6:.2f}M parameters, block_size {mc.block_size} ({label}), "
            f"{new_tokens} new tokens: {rates[True]:,.0f} tokens/s with the cache, {rates[False]:,.0f} without "
            f"-> {rates[True] / rates[False]:.1f}x{past_block}; KV cache "
            f"{model.config.kv_cache_bytes(cached_tokens):,} bytes for {cached_tokens} tokens, "
            f"{describe_heads(mc.n_head, mc.n_kv_head)}"
        )


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def percent(x: float) -> str:
    return f"{100 * x:.2f} %"


@exits_cleanly
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=50, help="training steps of each run (default 50)")
    parser.add_argument(
        "--only", choices=("train", "generation", "nanogpt"), help="run one part of the benchmark (default: all)"
    )
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout, to compare training speed with its train.py")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of the nanoGPT comparison (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="generations timed per measurement (default 3)")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of the train stage, e.g. model=big train.device=cuda"
    )
    args = parser.parse_args()
    if args.only == "nanogpt" and args.nanogpt is None:
        parser.error("--only nanogpt needs --nanogpt <a checkout of github.com/karpathy/nanoGPT>")
    if args.nanogpt is not None and not (args.nanogpt / "train.py").is_file():
        parser.error(f"--nanogpt {args.nanogpt}: no train.py there; give a checkout of github.com/karpathy/nanoGPT")

    # Always fresh runs; W&B off unless asked for (its background process adds noise on 2 cores).
    base = ["train.resume=never", "wandb.mode=disabled", *args.overrides]
    full = compose_train_config(base)
    device = resolve_device(full.train.device, distributed.current())
    data = TokenData(full.paths.processed_dir)
    model = GPT(GPTConfig(vocab_size=data.vocab.size, **full.model))
    # The peak is measured in the precision training computes in: bf16 under autocast, else fp32.
    dtype = getattr(torch, compute_dtype(device, full.train.dtype)[0])
    dtype_name = str(dtype).removeprefix("torch.")
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"benchmark: {full.name}, model {model.num_params() / 1e6:.2f}M parameters, {device}{threads}, {dtype_name}")
    print(f"load average {load_average()}: whatever else runs here slows every timing below")

    if args.only in (None, "train"):
        train_benchmark(full, base, args.iters, model, device, dtype)
    if args.only in (None, "generation"):
        generation_benchmark(base, data.vocab.size, device, args.repeats)
    if args.nanogpt is not None and args.only in (None, "nanogpt"):
        nanogpt_comparison(full, args.overrides, args.nanogpt, args.iters, args.rounds, model, device)


def train_benchmark(
    full: DictConfig, base: list[str], iters: int, model: GPT, device: torch.device, dtype: torch.dtype
) -> None:
    """The train stage's throughput and MFU, and the emergence metrics' overhead (see the module docstring)."""
    scaled = scaled_schedule(full.train, iters)
    dtype_name = str(dtype).removeprefix("torch.")
    peak, n = matmul_peak(device, dtype)
    print(f"matmul peak: {n}x{n} {dtype_name}, {peak / 1e9:,.1f} GFLOP/s (best of 5), the dtype training computes in")
    if dtype != torch.float32:
        float32_peak, _ = matmul_peak(device, torch.float32)
        print(
            f"matmul peak: {n}x{n} float32, {float32_peak / 1e9:,.1f} GFLOP/s ({dtype_name}'s is "
            f"{peak / float32_peak:.1f}x that)"
        )
    seed_of = time_measurements_of_seed(base, device)
    print(f"Measurements.of(model), seed model on {full.corpus.name}: {seed_of:.3f} s (median of 5)")

    with tempfile.TemporaryDirectory(prefix="glassbox-benchmark-") as out:
        # A process's first train() pays one-off costs (lazy initialisation in torch and the
        # data); a two-step run takes them, so that neither measured run does.
        print("\n--- warm-up: 2 steps")
        warm_up = ["train.max_iters=2", "train.eval_iters=1", "train.snapshots.every=0", f"paths.output_dir={out}"]
        train(compose_train_config([*base, *warm_up]), Path(out) / full.name / "warm-up")
        runs = {}
        for at_snapshots in (False, True):
            cfg = compose_train_config(
                [*base, *scaled, f"paths.output_dir={out}", f"analysis.at_snapshots={at_snapshots}"]
            )
            print(f"\n--- analysis.at_snapshots={at_snapshots}: {iters} steps, snapshots at {schedule_of(cfg.train)}")
            runs[at_snapshots] = timed_train(cfg, Path(out) / cfg.name / f"at_snapshots-{at_snapshots}", device)
    report(full, cfg, model, peak, runs[True], runs[False])


def report(full: DictConfig, short: DictConfig, model: GPT, peak: float, on: TimedRun, off: TimedRun) -> None:
    """Throughput from the run without metrics; the metrics' cost from the run with them; both
    projected onto the full schedule."""
    tc, iters = full.train, short.train.max_iters
    tokens_per_step = tc.batch_size * full.model.block_size * tc.grad_accum_steps
    training = off.wall - off.setup - off.calls.total("eval") - off.calls.total("snapshot")
    step_seconds = training / iters
    tokens_per_sec = tokens_per_step / step_seconds
    achieved = model.flops_per_token() * tokens_per_sec
    print(
        f"\ntraining: {tokens_per_sec:,.0f} tokens/s ({step_seconds:.3f} s per step of {tokens_per_step:,} tokens), "
        f"{achieved / 1e9:,.2f} GFLOP/s of model FLOPs = MFU {percent(achieved / peak)} of the measured peak"
    )

    metrics_each, metrics_setup = on.calls.mean("metrics"), on.calls.total("metrics setup")
    eval_each = off.calls.mean("eval") / short.train.eval_iters * tc.eval_iters  # its cost is per batch
    print(
        f"one snapshot: metrics {metrics_each:.3f} s, save {off.calls.mean('save'):.3f} s "
        f"(take_snapshot in all {off.calls.mean('snapshot'):.3f} s), val loss on {tc.eval_iters} "
        f"batches {eval_each:.3f} s; metrics setup {metrics_setup:.3f} s once per run"
    )

    n_short = len(on.calls.seconds["metrics"])
    in_metrics = metrics_setup + on.calls.total("metrics")
    print(
        f"metrics overhead, this run ({iters} steps, {n_short} snapshots): wall {on.wall:.1f} s with, "
        f"{off.wall:.1f} s without = {percent(on.wall / off.wall - 1)}; time inside the metrics "
        f"{in_metrics:.2f} s = {percent(in_metrics / (on.wall - in_metrics))}"
    )

    n_full = len(schedule_of(tc))
    full_without = tc.max_iters * step_seconds + n_full * (eval_each + off.calls.mean("snapshot"))
    full_metrics = metrics_setup + n_full * metrics_each
    projected = full_metrics / full_without
    denser = (n_short / iters) / (n_full / tc.max_iters)
    mechanisms_full = n_full * on.calls.mean("mechanisms")
    print(
        f"of which the mechanism metrics (head roles, ICL): {on.calls.mean('mechanisms'):.3f} s a snapshot, "
        f"{mechanisms_full:.1f} s over the full schedule = {percent(mechanisms_full / full_without)}"
    )
    print(f"load average now {load_average()}")
    verdict = "meets" if projected <= OVERHEAD_TARGET else "MISSES"
    print(
        f"metrics overhead, full schedule ({tc.max_iters} steps, {n_full} snapshots; this run had {denser:.1f}x "
        f"as many snapshots per step), projected from the times above: {full_metrics:.1f} s on {full_without:.0f} s "
        f"= {percent(projected)} -> {verdict} the <= {percent(OVERHEAD_TARGET)} target"
    )


def nanogpt_workdir(nanogpt: Path, processed_dir: Path, vocab_size: int, workdir: Path) -> None:
    """A folder to run nanoGPT's train.py in: it reads configurator.py and data/<dataset>/ from where it runs.
    glassbox's token files are nanoGPT's format already (uint16); nanoGPT reads its vocabulary size from a
    meta.pkl beside them (without one it would train a 50,304-token head)."""
    (workdir / "configurator.py").symlink_to(nanogpt.resolve() / "configurator.py")
    into = workdir / "data" / "glassbox"
    into.mkdir(parents=True)
    for split in ("train.bin", "val.bin"):
        (into / split).symlink_to((processed_dir / split).resolve())
    with open(into / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": vocab_size}, f)


def nanogpt_command(full: DictConfig, nanogpt: Path, iters: int, device: torch.device, out: Path) -> list[str]:
    """nanoGPT's train.py at the experiment's sizes and batch: no dropout, no compile, float32, one evaluation
    batch at step 0 and none after, every step's time printed."""
    mc, tc = full.model, full.train
    settings = {
        "dataset": "glassbox", "device": device.type, "dtype": "float32", "compile": False,
        "n_layer": mc.n_layer, "n_head": mc.n_head, "n_embd": mc.n_embd, "block_size": mc.block_size,
        "bias": mc.bias, "dropout": 0.0, "batch_size": tc.batch_size, "gradient_accumulation_steps": 1,
        "max_iters": iters, "lr_decay_iters": iters, "eval_interval": 10**9, "eval_iters": 1, "log_interval": 1,
        "always_save_checkpoint": False, "wandb_log": False, "out_dir": str(out / "nanogpt-out"),
    }  # fmt: skip
    return [sys.executable, str(nanogpt / "train.py"), *(f"--{key}={value}" for key, value in settings.items())]


def step_rates(seconds_per_step: list[float], tokens_per_step: int) -> float:
    """Tokens/s from the median step after the first two (start-up, nanoGPT's first evaluation, compiling)."""
    return tokens_per_step / statistics.median(seconds_per_step[2:])


def time_nanogpt(command: list[str], cwd: Path, tokens_per_step: int) -> float:
    printed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout
    milliseconds = re.findall(r"^iter \d+: .*time ([\d.]+)ms", printed, re.MULTILINE)
    return step_rates([float(ms) / 1000 for ms in milliseconds], tokens_per_step)


def time_glassbox(overrides: list[str], iters: int, out: Path, tokens_per_step: int) -> float:
    """glassbox's train stage as a user runs it, without snapshots between its first and last step."""
    run_out = out / "glassbox"
    schedule = ["train.snapshots.log_spaced_until=0", "train.snapshots.every=0", "train.eval_iters=1"]
    command = [
        sys.executable, "-m", "glassbox.train", *overrides, f"train.max_iters={iters}", *schedule,
        "train.log_every=1", "analysis.at_snapshots=false", "wandb.mode=disabled", "train.resume=never",
        f"paths.output_dir={run_out}",
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True)
    [progress] = run_out.glob("*/latest/progress.jsonl")
    rows = [json.loads(line) for line in progress.read_text().splitlines()]
    shutil.rmtree(run_out)
    return step_rates([tokens_per_step / row[keys.TOKENS_PER_SEC] for row in rows], tokens_per_step)


def nanogpt_comparison(
    full: DictConfig, overrides: list[str], nanogpt: Path, iters: int, rounds: int, model: GPT, device: torch.device
) -> None:
    """Alternated tokens/s of nanoGPT's train.py and glassbox's train stage: in float32, and as the experiment
    trains here (train.dtype and train.compile), eager and, where it compiles, compiled."""
    tokens_per_step = full.train.batch_size * full.model.block_size
    dtype = compute_dtype(device, full.train.dtype)[0]
    # (name, dtype, the train stage's overrides); nanoGPT first, the others' ratios are to it
    contenders = [
        ("nanoGPT float32", "float32", []),
        ("glassbox float32", "float32", ["train.dtype=float32", "train.compile=false"]),
    ]
    if dtype != "float32":
        contenders.append((f"glassbox {dtype}", dtype, [f"train.dtype={dtype}", "train.compile=false"]))
    if compile_choice(device, dtype, 1, full.train.compile)[0]:
        contenders.append((f"glassbox {dtype} compiled", dtype, [f"train.dtype={dtype}", "train.compile=true"]))
    print(f"\n--- against nanoGPT's train.py ({nanogpt}): {rounds} rounds of {iters} steps, alternated")
    peaks = {name: matmul_peak(device, getattr(torch, name))[0] for name in dict.fromkeys(["float32", dtype])}
    for name, peak in peaks.items():
        print(f"matmul peak {name}: {peak / 1e9:,.1f} GFLOP/s (best of 5)")
    rates: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="glassbox-vs-nanogpt-") as out:
        nanogpt_workdir(nanogpt, Path(full.paths.processed_dir), model.config.vocab_size, Path(out))
        command = nanogpt_command(full, nanogpt.resolve(), iters, device, Path(out))
        for round_number in range(1, rounds + 1):
            for name, _, extra in contenders:
                if name.startswith("nanoGPT"):
                    rate_now = time_nanogpt(command, Path(out), tokens_per_step)
                else:
                    rate_now = time_glassbox([*overrides, *extra], iters, Path(out), tokens_per_step)
                rates[name].append(rate_now)
                print(f"round {round_number}: {name:27s} {rate_now:,.0f} tokens/s")
    flops = model.flops_per_token()
    for name, computes_in, _ in contenders:
        ratios = [mine / theirs for mine, theirs in zip(rates[name], rates["nanoGPT float32"])]
        mfu = flops * statistics.median(rates[name]) / peaks[computes_in]
        print(
            f"{name:27s} median {statistics.median(rates[name]):,.0f} tokens/s, MFU {percent(mfu)} of the "
            f"{computes_in} peak; x nanoGPT per round: {', '.join(f'{r:.2f}' for r in ratios)}"
        )
    print(f"load average now {load_average()}")


if __name__ == "__main__":
    main()
