"""Stage 2, `make train`: train the char GPT and record the emergence story at every snapshot.

Reads  data/processed/<corpus>/ (the prepare stage's files).
Writes outputs/<experiment>/<run>/
         checkpoints/step_NNNNNNN.pt   model + optimizer + RNG states + config + vocab hash
         metrics.jsonl                 one object per snapshot step: losses and every emergence metric
         progress.jsonl                every train.log_every steps: batch loss, lr, tokens/s
         run.json                      status (running / complete / failed / interrupted), W&B run id, last step,
                                       the sha256 of every snapshot
         wandb/                        the W&B run (offline by default)
         resumes/<time>/               the Hydra config and log of each command that resumed the run
       and points outputs/<experiment>/latest at this run.

An interrupted run is continued by running the same command again (resume.py says how);
Ctrl-C or SIGTERM stop it at the end of the current step, with a snapshot to resume from.

Under `torchrun --nproc_per_node=N -m glassbox.train ...` the same loop runs data-parallel
(distributed.py): the global batch is batch_size × N × grad_accum_steps sequences, every rank
computes its slice, and rank 0 alone evaluates, measures, snapshots and logs.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from glassbox import distributed
from glassbox.data import TokenData
from glassbox.errors import GlassboxError, exits_cleanly
from glassbox.measure import Measurements
from glassbox.model import GPT, GPTConfig
from glassbox.paths import CONF_DIR
from glassbox.prepare import dataset_artifact_name
from glassbox.resume import Interrupted, RunStart, StopSignals, restore_training_state, start_run
from glassbox.snapshots import (load_snapshot, model_args, plain_state_dict, point_latest, save_snapshot,
                                snapshot_path, snapshot_steps, write_run_state)
from glassbox.tracking import Tracker

log = logging.getLogger(__name__)


def pick_device(name: str, ranks: distributed.Ranks) -> torch.device:
    """auto: cuda > mps > cpu. Each rank of a multi-GPU job takes its own GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.mps.is_available() else "cpu"
    if name == "cuda" and ranks.distributed:
        return torch.device("cuda", ranks.local_rank)
    return torch.device(name)


def autocast_for(device: torch.device, dtype: str):
    """bf16 autocast on CUDA by default; plain float32 elsewhere (CPU bf16 is slower, not faster)."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def lr_at(step: int, tc: DictConfig) -> float:
    """Linear warmup to learning_rate, then cosine decay to min_lr at lr_decay_iters."""
    if step < tc.warmup_iters:
        return tc.learning_rate * (step + 1) / tc.warmup_iters
    if step >= tc.lr_decay_iters:
        return tc.min_lr
    progress = (step - tc.warmup_iters) / max(1, tc.lr_decay_iters - tc.warmup_iters)
    return tc.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (tc.learning_rate - tc.min_lr)


@torch.no_grad()
def mean_loss(model: GPT, batches: list, device: torch.device, autocast) -> float:
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast:
            _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    model.train(was_training)
    return total / len(batches)


def train(cfg: DictConfig, run_dir: Path) -> Path:
    """Train in a new run at `run_dir`, or continue an interrupted run (train.resume); return the run's directory."""
    tc = cfg.train
    ranks = distributed.current()
    device = pick_device(tc.device, ranks)
    autocast = autocast_for(device, tc.dtype)
    torch.manual_seed(cfg.seed)

    data = TokenData(cfg.paths.processed_dir)
    model = GPT(GPTConfig(vocab_size=data.vocab.size, **cfg.model)).to(device)
    if ranks.is_main:
        print(f"model: {model.num_params() / 1e6:.2f}M parameters ({cfg.model.n_layer} layers, "
              f"{cfg.model.n_head} heads, {cfg.model.n_embd} dims, block {cfg.model.block_size}), "
              f"vocab {data.vocab.size}, device {device}, {ranks.world_size} process(es)")
    optimizer = model.configure_optimizer(tc.weight_decay, tc.learning_rate, (tc.beta1, tc.beta2), device.type)
    batch_generator = torch.Generator().manual_seed(cfg.seed)  # the same on every rank: each takes its slice
    # Built before the run exists, so a bad probe set fails without leaving a run behind.
    measurements = Measurements.from_config(cfg, data, cfg.model.block_size) if cfg.analysis.at_snapshots else None
    val_batches = data.fixed_batches("val", tc.eval_iters, tc.batch_size * ranks.world_size, cfg.model.block_size,
                                     seed=cfg.seed + 1)  # the global batch size, so any world size evaluates alike
    run = begin(cfg, run_dir, ranks, model, optimizer, batch_generator, data.vocab.hash)
    run_dir = run.dir
    # DDP averages gradients across ranks; it also broadcasts rank 0's weights when it wraps the model.
    step_fn = torch.nn.parallel.DistributedDataParallel(model) if ranks.distributed else model
    step_fn = torch.compile(step_fn) if tc.compile and device.type == "cuda" else step_fn

    snapshots = snapshot_steps(tc.max_iters, tc.snapshots.log_spaced_until, tc.snapshots.every)
    tokens_per_step = tc.batch_size * cfg.model.block_size * tc.grad_accum_steps * ranks.world_size

    tracker = Tracker(cfg if ranks.is_main else OmegaConf.merge(cfg, {"wandb": {"mode": "disabled"}}),
                      run_dir, job_type="train", run_id=run.wandb_id,
                      metrics_path=None if ranks.is_main else Path(os.devnull))
    progress_log = tracker.stream("progress")
    stop = StopSignals()  # from here on, Ctrl-C and SIGTERM end the run after the current step, with a snapshot
    try:
        tracker.use_artifact(dataset_artifact_name(cfg.corpus.name), "dataset", vocab_hash=data.vocab.hash,
                             sha256=cfg.corpus.sha256)
        recent_losses = list(run.recent_losses)
        last_snapshot = run.resumed_step  # a resumed run has the snapshot and metrics of its first step
        bar = tqdm(range(run.step, tc.max_iters + 1), initial=run.step, total=tc.max_iters + 1,
                   desc=f"train {cfg.name}", unit="step", dynamic_ncols=True, disable=not ranks.is_main)
        t_last, steps_timed = time.perf_counter(), 0  # tokens/s counts training steps only
        for step in bar:
            if step in snapshots and step != last_snapshot and ranks.is_main:
                record = {"tokens": step * tokens_per_step, "lr": lr_at(step, tc),
                          "loss/val": mean_loss(model, val_batches, device, autocast)}
                if recent_losses:
                    record["loss/train"] = sum(recent_losses) / len(recent_losses)
                if measurements is not None:
                    record |= measurements.of(model)
                tracker.log(record, step)
                take_snapshot(run_dir, step, model, optimizer, batch_generator, recent_losses, cfg, data, tracker,
                              run.wandb_id)
                last_snapshot = step
                t_last, steps_timed = time.perf_counter(), 0  # keep snapshot time out of tokens/s
            if step == tc.max_iters:
                break
            if distributed.any_rank(stop.requested, device):
                if step != last_snapshot and ranks.is_main:
                    take_snapshot(run_dir, step, model, optimizer, batch_generator, recent_losses, cfg, data,
                                  tracker, run.wandb_id)
                raise Interrupted(stop.signum or signal.SIGTERM, step)

            lr = lr_at(step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro_step in range(tc.grad_accum_steps):
                x, y = data.batch("train", tc.batch_size, cfg.model.block_size, batch_generator,
                                  rank=ranks.rank, world_size=ranks.world_size)
                last_micro_step = micro_step == tc.grad_accum_steps - 1
                with distributed.gradient_sync(step_fn, last_micro_step):
                    with autocast:
                        _, loss = step_fn(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
                    (loss / tc.grad_accum_steps).backward()
                loss_sum += loss.item()
            loss_value = distributed.mean_across_ranks(loss_sum / tc.grad_accum_steps, device)
            if not math.isfinite(loss_value):
                raise GlassboxError(f"the training loss became {loss_value} at step {step}; the last good "
                                    f"snapshot is in {run_dir / 'checkpoints'}. Lower train.learning_rate "
                                    "or raise train.grad_clip.")
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            recent_losses = [*recent_losses[-(tc.log_every - 1):], loss_value] if tc.log_every > 1 else [loss_value]
            steps_timed += 1

            if (step + 1) % tc.log_every == 0 and ranks.is_main:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                now = time.perf_counter()
                tokens_per_sec = steps_timed * tokens_per_step / max(now - t_last, 1e-9)
                t_last, steps_timed = now, 0
                progress = {"loss/train_batch": loss_value, "lr": lr, "tokens_per_sec": tokens_per_sec}
                progress_log.append({"step": step + 1, **progress})
                tracker.log_media(progress, step + 1)
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.1e}", tok_s=f"{tokens_per_sec:,.0f}")
        if ranks.is_main:
            final = tracker.metrics.read()[-1]
            write_run_state(run_dir, status="complete")
            tracker.summary({"final/loss_val": final["loss/val"], "final/step": tc.max_iters})
            print(f"run complete: {run_dir}  (final val loss {final['loss/val']:.3f})")
    except BaseException as err:
        if ranks.is_main:
            stopped = isinstance(err, (Interrupted, KeyboardInterrupt))  # Ctrl-C or SIGTERM, not a fault
            write_run_state(run_dir, status="interrupted" if stopped else "failed")
        tracker.finish(exit_code=1)
        raise
    finally:
        stop.uninstall()
    tracker.finish()
    return run_dir


def begin(cfg: DictConfig, run_dir: Path, ranks: distributed.Ranks, model: GPT, optimizer, batch_generator,
          vocab_hash: str) -> RunStart:
    """Start or resume the run on rank 0 (resume.start_run), then give every other rank the same state."""
    run = start_run(cfg, run_dir, model, optimizer, batch_generator, vocab_hash) if ranks.is_main else None
    run = distributed.from_main(run)
    if ranks.is_main:
        point_latest(run.dir, Path(cfg.paths.output_dir) / cfg.name)
    elif run.resumed_step is not None:
        restore_training_state(load_snapshot(snapshot_path(run.dir, run.resumed_step)), model, optimizer,
                               batch_generator)
    return run


def take_snapshot(run_dir, step, model, optimizer, batch_generator, recent_losses, cfg, data, tracker,
                  wandb_id) -> None:
    """Save everything a resumed run needs to go on exactly as this one would (resume.restore_training_state)."""
    path = snapshot_path(run_dir, step)
    save_snapshot(path, {
        "step": step,
        "model": plain_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "batches": batch_generator.get_state(),
                **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})},
        "model_args": model_args(model),
        "vocab_hash": data.vocab.hash,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "wandb_run_id": wandb_id,
        "recent_losses": list(recent_losses),
    })
    write_run_state(run_dir, last_snapshot=step)
    tracker.log_artifact(f"model-{wandb_id}", "model", [path], aliases=[f"step-{step}"],
                         metadata={"step": step, "experiment": cfg.name})


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    try:
        train(cfg, Path(HydraConfig.get().runtime.output_dir))
    except Interrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        sys.exit(stop.exit_code)


if __name__ == "__main__":
    distributed.start()  # before Hydra, so that every rank of a torchrun job shares one run directory
    try:
        main()
    finally:
        distributed.stop()
