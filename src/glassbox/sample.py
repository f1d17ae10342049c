"""`make sample`: text from a trained snapshot, what nanoGPT's sample.py is to nanoGPT.

    python -m glassbox.sample                                   the latest run's last snapshot, its probe prompt
    python -m glassbox.sample prompt=悟空道 num_samples=5 top_p=0.9
    python -m glassbox.sample prompts=[悟空道,行者笑道] sampler=greedy max_new_tokens=100
    python -m glassbox.sample prompt_file=start.txt run=outputs/xiyouji/<run> step=512
    python -m glassbox.sample checkpoint=<run>/checkpoints/step_0000700.pt use_cache=false

Each prompt's num_samples samples are drawn together, as one batch, by `GPT.generation_steps`: a
prefill over the prompt, then one decode step per new character through the KV cache. Then it
prints the throughput the way LLM servers report it: prefill tokens/s (prompt tokens read per
second) and decode tokens/s (new tokens per second after the first). Seeded: the same command
draws the same text. The samples and the speeds are also written to samples.json in the
command's own folder, outputs/<experiment>/samples/<time>/.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig

from glassbox import command_line, fileio
from glassbox.command_line import exits_cleanly
from glassbox.device import resolve_device
from glassbox.errors import GlassboxError
from glassbox.model import GPT
from glassbox.paths import CONF_DIR
from glassbox.run.layout import pick_snapshot
from glassbox.run.snapshots import load_snapshot
from glassbox.sampling import check_sampling
from glassbox.text.vocab import Vocab

SAMPLERS = ("sample", "greedy")
SEPARATOR = "-" * 40


@dataclass(frozen=True)
class Settings:
    """How to draw: checked once, before the snapshot is read."""

    num_samples: int
    max_new_tokens: int
    temperature: float  # 0 = greedy
    top_k: int | None
    top_p: float | None
    seed: int
    use_cache: bool

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Settings:
        if cfg.sampler not in SAMPLERS:
            raise GlassboxError(
                f"sampler={cfg.sampler}: must be one of {', '.join(SAMPLERS)} "
                "(greedy = always the most likely character, the same as temperature=0)"
            )
        if cfg.num_samples < 1:
            raise GlassboxError(f"num_samples={cfg.num_samples}: must be >= 1")
        if cfg.max_new_tokens < 0:
            raise GlassboxError(f"max_new_tokens={cfg.max_new_tokens}: must be >= 0")
        temperature = 0.0 if cfg.sampler == "greedy" else cfg.temperature
        try:
            check_sampling(temperature, cfg.top_k, cfg.top_p)
        except ValueError as err:
            raise GlassboxError(str(err)) from None
        return cls(cfg.num_samples, cfg.max_new_tokens, temperature, cfg.top_k, cfg.top_p, cfg.seed, cfg.use_cache)

    def describe(self) -> str:
        if self.temperature == 0:
            how = "greedy (the most likely character every step)"
        else:
            how = (
                f"temperature {self.temperature:g}, top_k {self.top_k or 'off'}, top_p {self.top_p or 'off'}, "
                f"seed {self.seed}"
            )
        return f"{how}; KV cache {'on' if self.use_cache else 'off'}"


def prompt_texts(cfg: DictConfig) -> list[str]:
    """The prompts asked for: prompt=, prompts=[...] or prompt_file= (at most one), else the
    experiment's first probe prompt."""
    given = {key: cfg[key] for key in ("prompt", "prompts", "prompt_file") if cfg[key] is not None}
    if len(given) > 1:
        raise GlassboxError(f"give the prompt one way, not {' and '.join(f'{key}=' for key in given)}")
    if "prompts" in given:
        prompts = cfg.prompts
        if not isinstance(prompts, ListConfig) or not prompts:
            raise GlassboxError(
                f"prompts={prompts}: give a list of one or more prompts, e.g. prompts=[悟空道,行者笑道]"
            )
        texts = [str(p) for p in prompts]
    elif "prompt_file" in given:
        path = Path(cfg.prompt_file)
        try:
            texts = [path.read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError) as err:
            raise GlassboxError(f"prompt_file={path}: cannot read it as UTF-8 text ({err})") from None
    else:
        texts = [str(cfg.prompt if cfg.prompt is not None else cfg.corpus.probes.prompts[0])]
    for number, text in enumerate(texts, start=1):
        if not text:
            which = f"prompt {number}" if len(texts) > 1 else "the prompt"
            raise GlassboxError(f"{which} is empty: give the model some text to continue, e.g. prompt=悟空道")
    return texts


def encode_prompts(texts: list[str], vocab: Vocab) -> list[list[int]]:
    encoded = []
    for number, text in enumerate(texts, start=1):
        try:
            encoded.append(vocab.encode(text))
        except GlassboxError as err:
            which = f"prompt {number}" if len(texts) > 1 else "the prompt"
            raise GlassboxError(f"{which} ({text[:20]!r}): {err}") from None
    return encoded


def pick_sample_device(name: str) -> torch.device:
    """device=auto|cpu|cuda|mps, refusing one this machine does not have."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.mps.is_available(), "auto": True}
    if name not in available:
        raise GlassboxError(f"device={name}: must be one of {', '.join(available)}")
    if not available[name]:
        raise GlassboxError(f"device={name}: this machine has none; use device=auto or device=cpu")
    return resolve_device(name)


@dataclass
class Throughput:
    """Tokens and seconds of the prefills and of the decode steps, summed over prompts."""

    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    decode_steps: int = 0
    re_encoded_steps: int = 0  # decode steps past block_size, which re-encode the window

    def as_dict(self) -> dict[str, float]:
        return {
            "prefill_tokens": self.prefill_tokens,
            "prefill_seconds": self.prefill_seconds,
            "prefill_tokens_per_sec": rate(self.prefill_tokens, self.prefill_seconds),
            "decode_tokens": self.decode_tokens,
            "decode_seconds": self.decode_seconds,
            "decode_tokens_per_sec": rate(self.decode_tokens, self.decode_seconds),
            "decode_steps": self.decode_steps,
            "re_encoded_steps": self.re_encoded_steps,
        }


def rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock reads the time it took (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def draw(
    model: GPT, ids: list[int], settings: Settings, generator: torch.Generator, speed: Throughput
) -> list[list[int]]:
    """num_samples continuations of one prompt, as one batch, each step timed into `speed`."""
    device = generator.device
    idx = torch.tensor([ids] * settings.num_samples, device=device)
    steps = model.generation_steps(
        idx,
        settings.max_new_tokens,
        settings.temperature,
        settings.top_k,
        generator,
        top_p=settings.top_p,
        use_cache=settings.use_cache,
    )
    tokens = []
    for number in range(settings.max_new_tokens):
        synchronize(device)
        start = time.perf_counter()
        step = next(steps)
        synchronize(device)
        seconds = time.perf_counter() - start
        if number == 0:  # the prompt (its last block_size tokens) in one pass, and the first new token
            speed.prefill_tokens += step.n_in * settings.num_samples
            speed.prefill_seconds += seconds
        else:
            speed.decode_tokens += settings.num_samples
            speed.decode_seconds += seconds
            speed.decode_steps += 1
            if settings.use_cache and step.n_in > 1:
                speed.re_encoded_steps += 1
        tokens.append(step.token)
    new = torch.cat(tokens, dim=1).tolist() if tokens else [[] for _ in range(settings.num_samples)]
    return [[*ids, *row] for row in new]


def format_speed(speed: Throughput, settings: Settings, block_size: int) -> str:
    if not speed.prefill_tokens:
        return "max_new_tokens=0: the model did not run"
    lines = [
        f"prefill: {speed.prefill_tokens:,} prompt tokens in {speed.prefill_seconds * 1000:.1f} ms = "
        f"{rate(speed.prefill_tokens, speed.prefill_seconds):,.0f} tokens/s"
    ]
    if speed.decode_steps:
        per_sec = rate(speed.decode_tokens, speed.decode_seconds)
        batch = f"{settings.num_samples} sample{'s' if settings.num_samples > 1 else ''}"
        lines.append(
            f"decode:  {speed.decode_tokens:,} tokens ({speed.decode_steps:,} steps × {batch}) "
            f"in {speed.decode_seconds:.3f} s = {per_sec:,.0f} tokens/s"
        )
    if speed.re_encoded_steps:
        lines.append(
            f"         {speed.re_encoded_steps:,} of the decode steps were past block_size {block_size}: "
            f"they re-encode the last {block_size} tokens (a new prefill), as without the cache"
        )
    return "\n".join(lines)


def sample(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Draw every prompt's samples, print them and the speeds, write samples.json; return what was written."""
    settings = Settings.from_config(cfg)
    texts = prompt_texts(cfg)
    device = pick_sample_device(cfg.device)
    path, _ = pick_snapshot(cfg.paths.output_dir, cfg.name, cfg.run, cfg.step, cfg.checkpoint)
    snapshot = load_snapshot(path)
    vocab = snapshot.vocab()
    encoded = encode_prompts(texts, vocab)
    model = snapshot.model().to(device)
    c = model.config
    print(
        f"snapshot {path} (step {snapshot.step}): {c.n_layer} layers × {c.n_head} heads, n_embd {c.n_embd}, "
        f"block_size {c.block_size}, pos_encoding={c.pos_encoding}, norm={c.norm}, mlp={c.mlp}, "
        f"{model.num_params() / 1e6:.2f}M parameters, on {device}"
    )
    print(f"sampling: {settings.describe()}\n{SEPARATOR}", flush=True)

    # One generator for the whole command, seeded once: each prompt continues the same random stream.
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    speed, results = Throughput(), []
    for text, ids in zip(texts, encoded):
        if len(ids) > c.block_size:
            print(f"(the prompt has {len(ids)} characters; the model reads its last {c.block_size})")
        samples = [vocab.decode(row) for row in draw(model, ids, settings, generator, speed)]
        for sample_text in samples:
            print(f"{sample_text}\n{SEPARATOR}", flush=True)
        results.append({"prompt": text, "samples": samples})
    print(format_speed(speed, settings, c.block_size))

    written = {
        "snapshot": str(path),
        "step": snapshot.step,
        "device": str(device),
        "settings": {**vars(settings), "sampler": cfg.sampler},
        "prompts": results,
        "speed": speed.as_dict(),
    }
    fileio.write_json(out_dir / "samples.json", written)
    return written


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="sample")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    sample(cfg, Path(HydraConfig.get().runtime.output_dir))


def cli() -> None:
    """The `glassbox-sample` command, as `python -m glassbox.sample` runs it."""
    command_line.run(main)


if __name__ == "__main__":
    cli()
