"""Generation: the model writes, one token at a time (what nanochat's engine.py is beside its gpt.py).

`generate` extends a batch of prompts; `generation_steps` yields each step, for callers that
watch it (the trace) or time it (`make sample`, scripts/benchmark.py: `timed_steps` adds each
step to one `Throughput`). With the KV cache the prompt runs once (prefill) and each later step
runs only the newest token (decode), as LLM servers run it. Every token is drawn by
glassbox/sampling.py, the functions the trace shows.

What `make sample` asks for beyond its typed config (glassbox/config) is read here too:
`SampleSettings`, the prompts (`prompt_texts`) and their characters (`encode_prompts`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from glassbox.errors import GlassboxError
from glassbox.model import GPT, Interventions, KVCache
from glassbox.sampling import check_sampling, next_token_probs, sample_next
from glassbox.text.vocab import Vocab


@dataclass(frozen=True)
class GenerationStep:
    """What one step of `generation_steps` ran and drew: one new token per sequence."""

    n_in: int  # tokens the model ran this step: the prompt (prefill), 1 (decode) or the whole context (no cache)
    n_keys: int  # tokens each new query attended to (the cache's length after the step, with a cache)
    kv_cache: list[KVCache] | None  # the cache after the step (None without one); later steps extend it
    probs: Tensor  # [B, V] the distribution the token was drawn from
    token: Tensor  # [B, 1] the drawn token ids


def new_kv_cache(model: GPT) -> list[KVCache]:
    """An empty KV cache, one `KVCache` per layer, for `model(..., kv_cache=)`."""
    return [KVCache() for _ in model.blocks]


@torch.no_grad()
def generate(model: GPT, idx: Tensor, max_new_tokens: int, *sampling: Any, **options: Any) -> Tensor:
    """Extend idx [B, T] by max_new_tokens drawn tokens -> [B, T + max_new_tokens]: every step of
    `generation_steps`, whose arguments these are (temperature=1.0, top_k=None, generator=None, and by
    keyword top_p=None, use_cache=True, interventions=None).

    Each token is drawn from `next_token_probs(logits, temperature, top_k, top_p)`
    (temperature 0 = greedy) with `generator`. Call `model.eval()` first if the model has dropout.
    `generation_steps` yields each step instead, for callers that watch (the trace) or time
    (`make sample`) the prefill and the decode steps.

    With `use_cache` the prompt is run once (prefill), filling a KV cache, and each later step
    runs only the newest token (decode). `use_cache=False` re-runs the whole context at every
    step: the same logits up to float rounding, and slower; it is kept for comparison.

    `interventions` (see `GPT.forward`) are applied at every step. With the cache a step edits only
    the new token's activations (the prompt's at prefill); the earlier tokens' keys and values
    were edited when they were new, so an edit of every token gives the same text either way.

    The model reads at most block_size tokens. Once the sequence is longer, each step reads
    its last block_size tokens at positions 0 to block_size - 1, so every token's position
    moves by one per step: learned and sinusoidal embeddings then differ for every token, and
    with any pos_encoding (rope and none too) the cached keys and values of the deeper layers
    were computed from tokens that have left the window. The cache cannot slide, so past
    block_size every step re-encodes the last block_size tokens (a new prefill): the same
    tokens as without the cache, at the same cost.
    """
    steps = generation_steps(model, idx, max_new_tokens, *sampling, **options)
    return torch.cat([idx, *(step.token for step in steps)], dim=1)


def generation_steps(
    model: GPT,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    *,
    top_p: float | None = None,
    use_cache: bool = True,
    interventions: Interventions | None = None,
) -> Iterator[GenerationStep]:
    """`generate`, one `GenerationStep` at a time (see `generate` for the arguments and the cache).

    The settings are checked when this is called, before the first step runs. The work of a
    step happens when the caller asks for it, so timing each `next()` times that step.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0 (got {max_new_tokens})")
    check_sampling(temperature, top_k, top_p)
    return _steps(model, idx, max_new_tokens, (temperature, top_k, top_p), generator, use_cache, interventions)


@torch.no_grad()  # torch re-enters no_grad each time a generator resumes, and leaves it at each yield
def _steps(
    model: GPT,
    idx: Tensor,
    max_new_tokens: int,
    sampling: tuple[float, int | None, float | None],
    generator: torch.Generator | None,
    use_cache: bool,
    interventions: Interventions | None,
) -> Iterator[GenerationStep]:
    """The steps of `generation_steps`; sampling is (temperature, top_k, top_p), already checked."""
    block_size = model.config.block_size
    kv_cache = None
    for _ in range(max_new_tokens):
        if not use_cache:
            context = idx[:, -block_size:]
            logits, _ = model(context, interventions=interventions)
        elif kv_cache is not None and len(kv_cache[0]) < block_size:  # decode: the newest token only
            context = idx[:, -1:]
            logits, _ = model(context, kv_cache=kv_cache, interventions=interventions)
        else:  # prefill: the prompt, or the window once it is full
            kv_cache = new_kv_cache(model)
            context = idx[:, -block_size:]
            logits, _ = model(context, kv_cache=kv_cache, interventions=interventions)
        probs = next_token_probs(logits[:, -1, :], *sampling)
        token = sample_next(probs, generator)
        idx = torch.cat([idx, token], dim=1)
        n_keys = len(kv_cache[0]) if use_cache else context.size(1)
        yield GenerationStep(context.size(1), n_keys, kv_cache if use_cache else None, probs, token)


# ---------------------------------------------------------------- how fast


@dataclass
class Throughput:
    """Tokens and seconds of the prefills and of the decode steps, summed over generations, and
    the largest KV cache a step held.

    The way LLM servers report speed: prefill tokens/s (prompt tokens read per second) and
    decode tokens/s (new tokens per second after the first); and memory: the KV cache grows with
    every token, which is what grouped-query attention (model.n_kv_head) shrinks.
    """

    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    decode_steps: int = 0
    re_encoded_steps: int = 0  # decode steps past block_size, which re-encode the window
    kv_cache_bytes: int = 0  # the largest KV cache after any step (0 without the cache)

    def add(self, step: GenerationStep, seconds: float, prefill: bool) -> None:
        batch = step.token.size(0)
        if step.kv_cache is not None:
            held = sum(layer.nbytes for layer in step.kv_cache)
            self.kv_cache_bytes = max(self.kv_cache_bytes, held)
        if prefill:  # the prompt (its last block_size tokens) in one pass, and the first new token
            self.prefill_tokens += step.n_in * batch
            self.prefill_seconds += seconds
        else:
            self.decode_tokens += batch
            self.decode_seconds += seconds
            self.decode_steps += 1
            if step.kv_cache is not None and step.n_in > 1:
                self.re_encoded_steps += 1

    @property
    def seconds(self) -> float:
        return self.prefill_seconds + self.decode_seconds

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
            "kv_cache_bytes": self.kv_cache_bytes,
        }

    def describe(self, num_samples: int, block_size: int) -> str:
        """The speeds as `make sample` prints them, for batches of num_samples."""
        if not self.prefill_tokens:
            return "max_new_tokens=0: the model did not run"
        lines = [
            f"prefill: {self.prefill_tokens:,} prompt tokens in {self.prefill_seconds * 1000:.1f} ms = "
            f"{rate(self.prefill_tokens, self.prefill_seconds):,.0f} tokens/s"
        ]
        if self.decode_steps:
            per_sec = rate(self.decode_tokens, self.decode_seconds)
            batch = f"{num_samples} sample{'s' if num_samples > 1 else ''}"
            lines.append(
                f"decode:  {self.decode_tokens:,} tokens ({self.decode_steps:,} steps × {batch}) "
                f"in {self.decode_seconds:.3f} s = {per_sec:,.0f} tokens/s"
            )
        if self.re_encoded_steps:
            lines.append(
                f"         {self.re_encoded_steps:,} of the decode steps were past block_size {block_size}: "
                f"they re-encode the last {block_size} tokens (a new prefill), as without the cache"
            )
        if self.kv_cache_bytes:
            lines.append(
                f"KV cache: {self.kv_cache_bytes:,} bytes at its largest ({self.kv_cache_bytes / 1024:,.1f} KiB)"
            )
        return "\n".join(lines)


def rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock reads the time it took (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(
    steps: Iterator[GenerationStep], speed: Throughput, device: torch.device
) -> Iterator[tuple[GenerationStep, float]]:
    """Each step of one generation with its seconds, added to `speed`: the first is the prefill.

    Only the step's own work is timed, not what the caller does between steps.
    """
    prefill = True
    while True:
        synchronize(device)
        start = time.perf_counter()
        step = next(steps, None)
        if step is None:
            return
        synchronize(device)
        seconds = time.perf_counter() - start
        speed.add(step, seconds, prefill)
        prefill = False
        yield step, seconds


# ---------------------------------------------------------------- what `make sample` asks for


@dataclass(frozen=True)
class SampleSettings:
    """How `make sample` draws: checked once, before the snapshot is read."""

    num_samples: int
    max_new_tokens: int
    temperature: float  # 0 = greedy
    top_k: int | None
    top_p: float | None
    seed: int
    use_cache: bool

    @classmethod
    def for_sampler(cls, sampler: str, temperature: float, num_samples: int, **rest) -> SampleSettings:
        """`sampler=greedy` is temperature 0, whatever `temperature` says (the config checked every value).
        Greedy decoding gives every sample the same text: it is drawn once, whatever num_samples asks."""
        temperature = 0.0 if sampler == "greedy" else temperature
        return cls(temperature=temperature, num_samples=num_samples if temperature else 1, **rest)

    def describe(self) -> str:
        if self.temperature == 0:
            how = "greedy (the most likely character every step; one sample, as any more would be the same text)"
        else:
            how = (
                f"temperature {self.temperature:g}, top_k {self.top_k or 'off'}, top_p {self.top_p or 'off'}, "
                f"seed {self.seed}"
            )
        return f"{how}; KV cache {'on' if self.use_cache else 'off'}"


def prompt_texts(
    prompt: str | None, prompts: Sequence[str] | None, prompt_file: str | None, probe_prompts: Sequence[str]
) -> list[str]:
    """The prompts asked for: prompt=, prompts=[...] or prompt_file= (at most one), else the
    experiment's first probe prompt."""
    asked = {"prompt": prompt, "prompts": prompts, "prompt_file": prompt_file}
    given = [key for key, value in asked.items() if value is not None]
    if len(given) > 1:
        raise GlassboxError(f"give the prompt one way, not {' and '.join(f'{key}=' for key in given)}")
    if prompts is not None:
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
            raise GlassboxError(
                f"prompts={prompts}: give a list of one or more prompts, e.g. prompts=[悟空道,行者笑道]"
            )
        texts = [str(p) for p in prompts]
    elif prompt_file is not None:
        path = Path(prompt_file)
        try:
            texts = [path.read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError) as err:
            raise GlassboxError(f"prompt_file={path}: cannot read it as UTF-8 text ({err})") from None
    else:
        texts = [str(prompt if prompt is not None else probe_prompts[0])]
    for number, text in enumerate(texts, start=1):
        if not text:
            which = f"prompt {number}" if len(texts) > 1 else "the prompt"
            raise GlassboxError(f"{which} is empty: give the model some text to continue, e.g. prompt=悟空道")
    return texts


def prompt_preview(text: str, shown: int = 40) -> str:
    """A prompt as a quoted string, cut to its first `shown` characters (a prompt file may be long)."""
    return repr(text) if len(text) <= shown else f"{text[:shown]!r}… ({len(text):,} characters)"


def encode_prompts(texts: list[str], vocab: Vocab) -> list[list[int]]:
    encoded = []
    for number, text in enumerate(texts, start=1):
        try:
            encoded.append(vocab.encode(text))
        except GlassboxError as err:
            which = f"prompt {number}" if len(texts) > 1 else "the prompt"
            raise GlassboxError(f"{which} ({text[:20]!r}): {err}") from None
    return encoded


def draw_samples(
    model: GPT, ids: list[int], settings: SampleSettings, generator: torch.Generator, speed: Throughput
) -> list[list[int]]:
    """num_samples continuations of one prompt, as one batch, each step timed into `speed`; Ctrl-C
    raises `StoppedDrawing` with the continuations as far as they got."""
    idx = torch.tensor([ids] * settings.num_samples, device=generator.device)
    steps = generation_steps(
        model,
        idx,
        settings.max_new_tokens,
        settings.temperature,
        settings.top_k,
        generator,
        top_p=settings.top_p,
        use_cache=settings.use_cache,
    )
    tokens = []
    try:
        for step, _ in timed_steps(steps, speed, generator.device):
            tokens.append(step.token)
    except KeyboardInterrupt:
        raise StoppedDrawing(_with_prompt(ids, tokens, settings.num_samples)) from None
    return _with_prompt(ids, tokens, settings.num_samples)


def _with_prompt(ids: list[int], tokens: list[Tensor], num_samples: int) -> list[list[int]]:
    new = torch.cat(tokens, dim=1).tolist() if tokens else [[] for _ in range(num_samples)]
    return [[*ids, *row] for row in new]


class StoppedDrawing(KeyboardInterrupt):
    """Ctrl-C while `draw_samples` drew a batch: the samples as far as they got (prompt and new tokens)."""

    def __init__(self, rows: list[list[int]]) -> None:
        super().__init__()
        self.rows = rows
