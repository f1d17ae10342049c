"""The training loop, in named steps: one optimisation step, a snapshot, a progress line.

`Trainer` trains a new run at `run_dir`, or continues an interrupted one (train.resume; see
run/resume.py). At every snapshot step rank 0 evaluates, measures the emergence metrics
(analysis/measurements.py), logs them and saves a snapshot (run/snapshots.py); W&B also gets a
histogram of the embedding's row norms, at wandb.projector.steps the embedding as a table for its
Embedding Projector, and the snapshot's weights as a model artifact. Every train.log_every steps
it logs the batch loss, learning rate and tokens/s.

Under `torchrun --nproc_per_node=N -m glassbox.train ...` the same loop runs data-parallel
(run/distributed.py): the global batch is batch_size × N × grad_accum_steps sequences, every rank
computes its slice, and rank 0 alone evaluates, measures, snapshots and logs.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from glassbox import metric_keys as keys
from glassbox.analysis.measurements import Measurements
from glassbox.config.groups import Analysis, Corpus, Model
from glassbox.config.stages import TrainStage
from glassbox.device import resolve_device
from glassbox.errors import GlassboxError
from glassbox.model import GPT, GPTConfig, describe_heads
from glassbox.probes.embeddings import row_norms, with_most_frequent
from glassbox.run import distributed, lock
from glassbox.run.layout import latest_link, point_latest, read_run_state, snapshot_path, weights_path, write_run_state
from glassbox.run.resume import Interrupted, RunStart, StopSignals, how_to_resume, is_sweep_job, start_run
from glassbox.run.snapshots import TrainingState, load_snapshot, save_snapshot, save_weights
from glassbox.run.tracking import Launch, Tracker, dataset_artifact_name, wandb_mode
from glassbox.text.tokens import TokenData
from glassbox.training.schedule import (
    autocast_in,
    compile_choice,
    compute_dtype,
    deterministic_kernels,
    lr_at,
    snapshot_steps,
)

log = logging.getLogger(__name__)


@torch.no_grad()
def mean_loss(model: GPT, batches: list, device: torch.device) -> float:
    """The model's mean loss over fixed batches, in eval mode (no dropout) and in float32 whatever the training
    dtype: it is the number float32 and bf16 runs are compared by."""
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    model.train(was_training)
    return total / len(batches)


class TrainingSpeed:
    """Training tokens per second over the steps since the last reading (snapshots excluded)."""

    def __init__(self, tokens_per_step: int, device: torch.device) -> None:
        self.tokens_per_step = tokens_per_step
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.since, self.steps = time.perf_counter(), 0

    def read(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        tokens_per_sec = self.steps * self.tokens_per_step / max(now - self.since, 1e-9)
        self.since, self.steps = now, 0
        return tokens_per_sec


class Trainer:
    """One training run, from its first (or resumed) step to train.max_iters, on every rank.

    Each part reads its own section of the typed config (`settings`); `config`, the whole config as composed, is
    kept as data: every snapshot stores it, a resumed run is compared with it, and the W&B run records it.
    """

    def __init__(self, settings: TrainStage, config: DictConfig, run_dir: Path) -> None:
        self.settings, self.config, self.tc = settings, config, settings.train
        block_size = settings.model.block_size
        # the machine
        self.ranks = distributed.current()
        self.device = resolve_device(self.tc.device, self.ranks)
        self.dtype, self.dtype_reason = compute_dtype(self.device, self.tc.dtype)
        self.autocast = autocast_in(self.device, self.dtype)
        self.compiled, self.compile_reason = compile_choice(
            self.device, self.dtype, self.ranks.world_size, self.tc.compile
        )
        self.step_kernels = deterministic_kernels if self.compiled else nullcontext
        # the data and the model, whose initial weights are drawn from the seed
        torch.manual_seed(settings.seed)
        self.data = TokenData(settings.paths.processed_dir)
        self.state = self._new_state(settings.model, settings.seed)
        # what each snapshot measures and where it is logged, set before the run exists: a bad probe set or
        # W&B mode fails without leaving a run behind
        self.measurements = self._measurements(settings.corpus, settings.analysis, block_size)
        wandb_run_mode = wandb_mode(settings.wandb.mode) if self.ranks.is_main else "disabled"
        self.wandb_name = Launch.current().run_name(config)
        self.val_batches = self._val_batches(block_size, settings.seed)
        # the run, new or resumed, and its schedule
        self.run = self._begin(Path(run_dir))
        self.initial_embedding = self._initial_embedding()
        self.step_fn = self._wrap(self.state.model)
        self.snapshots = set(
            snapshot_steps(self.tc.max_iters, self.tc.snapshots.log_spaced_until, self.tc.snapshots.every)
        )
        self.training_speed = TrainingSpeed(self._tokens_per_step(block_size), self.device)
        self.projector_steps = {*settings.wandb.projector.steps, self.tc.max_iters}
        self.tracker = self._tracker(wandb_run_mode)
        self.progress_log = self.tracker.stream("progress")

    def _new_state(self, sizes: Model, seed: int) -> TrainingState:
        """The model (drawn from the seed set just before), its optimizer and the batch order."""
        tc = self.tc
        model = GPT(GPTConfig(vocab_size=self.data.vocab.size, **sizes.model_dump())).to(self.device)
        if self.ranks.is_main:
            log.info(
                f"model: {model.num_params() / 1e6:.2f}M parameters ({sizes.n_layer} layers, "
                f"{describe_heads(sizes.n_head, sizes.n_kv_head)}, {sizes.n_embd} dims, block {sizes.block_size}), "
                f"vocab {self.data.vocab.size}, device {self.device}, {self.ranks.world_size} process(es); "
                f"{self.dtype} ({self.dtype_reason}); "
                f"{'compiled' if self.compiled else 'eager'} ({self.compile_reason})"
            )
        optimizer = model.configure_optimizer(tc.weight_decay, tc.learning_rate, (tc.beta1, tc.beta2), self.device.type)
        batch_generator = torch.Generator().manual_seed(seed)  # the same on every rank: each takes its slice
        return TrainingState(model, optimizer, batch_generator)

    def _measurements(self, corpus: Corpus, analysis: Analysis, block_size: int) -> Measurements | None:
        """What every snapshot measures besides the losses (nothing more with analysis.at_snapshots=false)."""
        if not analysis.at_snapshots:
            return None
        return Measurements.from_config(corpus, analysis, self.data, block_size)

    def _val_batches(self, block_size: int, seed: int) -> list:
        """The fixed validation batches, of the global batch size, so any world size evaluates alike."""
        batch_size = self.tc.batch_size * self.ranks.world_size
        return self.data.fixed_batches("val", self.tc.eval_iters, batch_size, block_size, seed=seed + 1)

    def _tokens_per_step(self, block_size: int) -> int:
        """Tokens of one optimisation step, over every rank and micro-batch."""
        return self.tc.batch_size * block_size * self.tc.grad_accum_steps * self.ranks.world_size

    def _tracker(self, wandb_run_mode: str) -> Tracker:
        """The run's metrics.jsonl and W&B run (rank 0's; other ranks log nowhere)."""
        return Tracker(
            OmegaConf.merge(self.config, {"wandb": {"mode": wandb_run_mode}}),
            self.run.dir,
            job_type="train",
            run_id=self.run.wandb_id,
            name=self.wandb_name,
            metrics_path=None if self.ranks.is_main else Path(os.devnull),
            facts={"n_params": self.state.model.num_params(), "dtype": self.dtype, "compiled": self.compiled},
        )

    def _begin(self, run_dir: Path) -> RunStart:
        """Start or resume the run on rank 0 (run/resume.py), then give every other rank the same state."""
        if self.ranks.is_main:
            run_facts = {
                "n_params": self.state.model.num_params(),
                "dtype": self.dtype,
                "compiled": self.compiled,
                "wandb_run_name": self.wandb_name,
            }
            if self.measurements is not None:
                run_facts["probe_pairs"] = self.measurements.probes.describe_pairs()
            run = start_run(self.settings, self.config, run_dir, self.state, self.data.vocab.hash, run_facts)
        else:
            run = None
        run = distributed.from_main(run)
        if self.ranks.is_main and not is_sweep_job():  # a sweep's jobs live in the sweep: `latest` is the user's run
            point_latest(run.dir, self.settings.paths.output_dir, self.settings.name)
        elif run.resumed_step is not None:
            self.state.restore(load_snapshot(snapshot_path(run.dir, run.resumed_step)))
        return run

    def _initial_embedding(self) -> torch.Tensor | None:
        """The step-0 token embedding that every snapshot's dcos/ keys are measured from: the model's own
        in a new run, the step-0 snapshot's in a resumed one (so both log the same numbers)."""
        if self.measurements is None or not self.ranks.is_main:
            return None
        if self.run.resumed_step is None:
            return self.state.model.wte.weight.detach().clone()
        return load_snapshot(snapshot_path(self.run.dir, 0)).weights["wte.weight"].to(self.device)

    def _wrap(self, model: GPT) -> torch.nn.Module:
        """DDP averages gradients across ranks (and broadcasts rank 0's weights when it wraps the model)."""
        step_fn = torch.nn.parallel.DistributedDataParallel(model) if self.ranks.distributed else model
        return torch.compile(step_fn) if self.compiled else step_fn

    def train(self) -> Path:
        """Run to train.max_iters, or until Ctrl-C / SIGTERM (a snapshot, then `Interrupted`)."""
        stop = StopSignals()  # from here on, Ctrl-C and SIGTERM end the run after the current step
        try:
            self.tracker.use_artifact(
                dataset_artifact_name(self.settings.corpus.name),
                "dataset",
                vocab_hash=self.data.vocab.hash,
                sha256=self.data.meta["inputs"]["sha256"],
            )
            started = time.perf_counter()
            self._loop(stop)
            if self.ranks.is_main:
                self._complete(time.perf_counter() - started)
        except BaseException as err:
            if self.ranks.is_main:
                stopped = isinstance(err, (Interrupted, KeyboardInterrupt))  # Ctrl-C or SIGTERM, not a fault
                write_run_state(self.run.dir, status="interrupted" if stopped else "failed")
            self.tracker.finish(exit_code=1)
            raise
        finally:
            stop.uninstall()
            lock.release(self.run.dir)
        self.tracker.finish()
        return self.run.dir

    def _loop(self, stop: StopSignals) -> None:
        tc, is_main = self.tc, self.ranks.is_main
        last_snapshot = self.run.resumed_step  # a resumed run has the snapshot and metrics of its first step
        # The bar counts optimisation steps, so it reaches 100 % with the last one, before the final snapshot.
        with tqdm(
            total=tc.max_iters,
            initial=self.run.step,
            desc=f"train {self.settings.name}",
            unit="step",
            dynamic_ncols=True,
            disable=not is_main,
        ) as bar:
            self.training_speed.reset()
            for step in range(self.run.step, tc.max_iters + 1):
                if step in self.snapshots and step != last_snapshot:
                    self._check_finite(step)  # before anything of the step is logged or saved; every rank stops
                if step in self.snapshots and step != last_snapshot and is_main:
                    self._measure(step)
                    self._save(step)
                    last_snapshot = step
                    self.training_speed.reset()  # keep snapshot time out of tokens/s
                if step == tc.max_iters:
                    break
                if distributed.any_rank(stop.requested, self.device):
                    if step != last_snapshot and is_main:
                        self._check_finite(step)
                        self._save(step)
                    raise Interrupted(
                        stop.signum or signal.SIGTERM,
                        step,
                        how_to_resume(self.tc.resume, snapshot_path(self.run.dir, step)),
                    )
                loss, lr = self._optimisation_step(step)
                bar.update()
                if (step + 1) % tc.log_every == 0 and is_main:
                    self._log_progress(step + 1, loss, lr, bar)

    def _optimisation_step(self, step: int) -> tuple[float, float]:
        """One update from one global batch (grad_accum_steps micro-batches per rank); returns (loss, lr)."""
        tc, state = self.tc, self.state
        lr = lr_at(step, tc)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro_step in range(tc.grad_accum_steps):
            x, y = self.data.batch(
                "train",
                tc.batch_size,
                self.settings.model.block_size,
                state.batch_generator,
                rank=self.ranks.rank,
                world_size=self.ranks.world_size,
            )
            last_micro_step = micro_step == tc.grad_accum_steps - 1
            with distributed.gradient_sync(self.step_fn, last_micro_step), self.step_kernels():
                with self.autocast:
                    _, loss = self.step_fn(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
                (loss / tc.grad_accum_steps).backward()
            loss_sum += loss.item()
        loss_value = distributed.mean_across_ranks(loss_sum / tc.grad_accum_steps, self.device)
        if not math.isfinite(loss_value):
            raise self._diverged(f"the training loss became {loss_value} at step {step}")
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), tc.grad_clip)
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        window = tc.log_every - 1  # the losses loss/train averages at the next snapshot
        state.recent_losses = [*state.recent_losses[-window:], loss_value] if window else [loss_value]
        self.training_speed.steps += 1
        return loss_value, lr

    def _check_finite(self, step: int) -> None:
        """Stop before a snapshot of weights that are no longer numbers: resuming from it would fail forever."""
        bad = self.state.non_finite()
        if bad:
            raise self._diverged(
                f"the weights became non-finite by step {step} ({', '.join(bad[:3])}"
                f"{' …' if len(bad) > 3 else ''}), so no snapshot was saved"
            )

    def _diverged(self, what: str) -> GlassboxError:
        """The error for a run whose numbers blew up: its last good snapshot, what to change, how to go on."""
        last = read_run_state(self.run.dir).get("last_snapshot")  # never a non-finite one: see _check_finite
        advice = (
            f"Lower train.learning_rate (now {self.tc.learning_rate:g}), or clip the gradients harder with a "
            f"lower train.grad_clip (now {self.tc.grad_clip:g}; 0 means no clipping)"
        )
        if last is None:
            return GlassboxError(f"{what}, before any snapshot was saved. {advice}, and train again.")
        path = snapshot_path(self.run.dir, last)
        val_loss = {row["step"]: row[keys.LOSS_VAL] for row in self.tracker.metrics.read() if keys.LOSS_VAL in row}
        if val_loss.get(last, 0.0) > val_loss.get(0, math.inf):  # finite, but already blown up
            return GlassboxError(
                f"{what}; the last snapshot with finite weights, {path}, is already worse than the untrained model "
                f"(validation loss {val_loss[last]:.4g}; at step 0 {val_loss[0]:.4g}), so resuming from it would "
                f"diverge again. {advice}, and start a new run (train.resume=never)."
            )
        resume = (
            how_to_resume(self.tc.resume, path)
            or "Run the command again with it: train.resume=auto resumes from there."
        )
        return GlassboxError(f"{what}; the last good snapshot is {path} (step {last}). {advice}. {resume}")

    def _measure(self, step: int) -> None:
        """Validation loss and every emergence metric at a snapshot step, to metrics.jsonl and W&B."""
        record = {
            keys.TOKENS: step * self.training_speed.tokens_per_step,
            keys.LR: lr_at(step, self.tc),
            keys.LOSS_VAL: mean_loss(self.state.model, self.val_batches, self.device),
        }
        if self.state.recent_losses:
            record[keys.LOSS_TRAIN] = sum(self.state.recent_losses) / len(self.state.recent_losses)
        if self.measurements is not None:
            record |= self.measurements.of(self.state.model, self.initial_embedding)
        self.tracker.log(record, step)
        train_loss = f"train loss {record[keys.LOSS_TRAIN]:.4f}, " if keys.LOSS_TRAIN in record else ""
        log.info(f"step {step}: {train_loss}val loss {record[keys.LOSS_VAL]:.4f}")  # as nanoGPT prints its evals
        self._log_embedding_views(step)

    def _log_embedding_views(self, step: int) -> None:
        """W&B's own views of the token embedding: a histogram of its row norms, and at the projector steps
        a table (char, count, group, vector) of the probe and most frequent characters."""
        if self.tracker.wandb_run is None:
            return
        W = self.state.model.wte.weight.detach()
        self.tracker.log_histogram(keys.ROW_NORMS, row_norms(W).cpu().numpy(), step)
        if step not in self.projector_steps:
            return
        vocab = self.data.vocab
        groups = self.measurements.probes.char_groups() if self.measurements is not None else {}
        probe_ids = torch.tensor([vocab.stoi[char] for char in groups], dtype=torch.long)
        ids = with_most_frequent(probe_ids, vocab.counts, self.settings.wandb.projector.n_frequent).tolist()
        vectors = W[ids].float().cpu().round(decimals=4).tolist()
        group = {char: name or "pairs only" for char, name in groups.items()}  # "": a probe in no group
        rows = [
            [vocab.itos[i], vocab.counts[i], group.get(vocab.itos[i], "other"), vector]
            for i, vector in zip(ids, vectors)
        ]
        self.tracker.log_table(keys.PROJECTOR, ["char", "count", "group", "vector"], rows, step)

    def _save(self, step: int) -> None:
        """A snapshot: everything a resumed run needs to go on exactly as this one would."""
        config = OmegaConf.to_container(self.config, resolve=True)
        payload = self.state.payload(step, config, self.data.vocab.hash, self.run.wandb_id)
        save_snapshot(snapshot_path(self.run.dir, step), payload)
        write_run_state(self.run.dir, last_snapshot=step)
        if self.tracker.wandb_run is not None:  # W&B gets the weights and config; optimizer and RNG stay local
            weights = weights_path(self.run.dir, step)
            save_weights(weights, payload)
            self.tracker.log_artifact(
                f"model-{self.run.wandb_id}",
                "model",
                [weights],
                aliases=[f"step-{step}"],
                metadata={"step": step, "experiment": self.settings.name},
            )

    def _log_progress(self, step: int, loss: float, lr: float, bar: tqdm) -> None:
        tokens_per_sec = self.training_speed.read()
        progress = {keys.LOSS_TRAIN_BATCH: loss, keys.LR: lr, keys.TOKENS_PER_SEC: tokens_per_sec}
        self.progress_log.append({"step": step, **progress})
        self.tracker.log_media(progress, step)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{tokens_per_sec:,.0f}")

    def _complete(self, seconds: float) -> None:
        """Mark the run complete, with the wall-clock seconds of this process's loop (since its resume, if resumed)."""
        final = self.tracker.metrics.read()[-1]
        write_run_state(self.run.dir, status="complete", train_seconds=round(seconds, 1))
        self.tracker.summary({keys.FINAL_LOSS_VAL: final[keys.LOSS_VAL], keys.FINAL_STEP: self.tc.max_iters})
        latest = latest_link(self.settings.paths.output_dir, self.settings.name)
        # a sweep's job leaves `latest` to the experiment's own runs (_begin)
        pointer = "a job of a sweep: `latest` is not moved" if is_sweep_job() else f"{latest} points at it"
        log.info(
            f"run complete, final val loss {final[keys.LOSS_VAL]:.3f}: wrote {self.run.dir} "
            f"(snapshots, metrics, W&B run, log); {pointer}"
        )
