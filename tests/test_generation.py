"""Generation with a KV cache (prefill, then one token per decode step) against re-running the context."""

import pytest
import torch

from glassbox.generation import generate, new_kv_cache
from glassbox.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32)


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CONFIG).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CONFIG.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


def generate_recording(model: GPT, prompt: torch.Tensor, n: int, **kwargs) -> tuple[torch.Tensor, list, list]:
    """generate(), plus the last-position logits and the input length of every forward call it made."""
    logits, lengths = [], []

    def record(_module, args, kwargs_, output):
        lengths.append(args[0].size(1))
        logits.append(output[0][:, -1])

    handle = model.register_forward_hook(record, with_kwargs=True)
    try:
        out = generate(model, prompt, n, **kwargs)
    finally:
        handle.remove()
    return out, logits, lengths


@pytest.mark.parametrize("prompt_length", [5, 16, 20])  # shorter than, equal to, longer than block_size
def test_cached_greedy_generation_matches_uncached_at_every_step(prompt_length):
    model = tiny_model()
    prompt = tokens(2, prompt_length)
    n = 24  # from a 5-token prompt this crosses block_size (16) on the way
    cached, cached_logits, cached_lengths = generate_recording(model, prompt, n, temperature=0.0)
    plain, plain_logits, plain_lengths = generate_recording(model, prompt, n, temperature=0.0, use_cache=False)
    assert cached.shape == (2, prompt_length + n)
    assert torch.equal(cached, plain)
    assert len(cached_logits) == len(plain_logits) == n
    for step, (a, b) in enumerate(zip(cached_logits, plain_logits, strict=True)):
        assert torch.allclose(a, b, atol=1e-5), f"step {step}: logits differ by {(a - b).abs().max()}"
    # The cached run really decodes: one prefill, then one token per step until the window is full,
    # then a re-encoded window (a new prefill) per step.
    first = min(prompt_length, CONFIG.block_size)
    n_decode = CONFIG.block_size - first
    assert cached_lengths == [first] + [1] * n_decode + [CONFIG.block_size] * (n - 1 - n_decode)
    assert plain_lengths == [min(prompt_length + i, CONFIG.block_size) for i in range(n)]


def test_greedy_takes_the_argmax_of_each_steps_logits():
    model = tiny_model()
    out, logits, _ = generate_recording(model, tokens(3, 4), 10, temperature=0.0)
    assert torch.equal(out[:, 4:], torch.stack([step.argmax(-1) for step in logits], dim=1))


def test_seeded_sampling_is_reproducible_and_the_same_with_and_without_cache():
    model = tiny_model()
    prompt = tokens(2, 3)
    settings = {"temperature": 1.2, "top_k": 8, "top_p": 0.9}
    draw = lambda seed, use_cache: generate(  # noqa: E731
        model, prompt, 20, generator=torch.Generator().manual_seed(seed), use_cache=use_cache, **settings
    )
    assert torch.equal(draw(7, True), draw(7, True))
    assert torch.equal(draw(7, True), draw(7, False))
    assert not torch.equal(draw(7, True), draw(8, True))


def test_old_positional_call_still_works():
    model = tiny_model()
    prompt = tokens(1, 3)
    out = generate(model, prompt, 5, 0.8, 4, torch.Generator().manual_seed(1))  # how suites.py calls it
    assert out.shape == (1, 8)


def test_zero_new_tokens_returns_the_prompt():
    prompt = tokens(2, 3)
    assert torch.equal(generate(tiny_model(), prompt, 0), prompt)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": -1}, r"max_new_tokens must be >= 0 \(got -1\)"),
        ({"temperature": -0.5}, r"temperature must be >= 0"),
        ({"top_k": 0}, r"top_k must be >= 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.01}, r"top_p must be in \(0, 1\]"),
    ],
)
def test_bad_settings_raise_before_generating(kwargs, message):
    model = tiny_model()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError, match=message):
        generate(model, tokens(1, 3), **{"max_new_tokens": 0, **kwargs})
    assert not calls


def test_forward_in_chunks_through_the_kv_cache_equals_one_forward():
    model = tiny_model()
    idx = tokens(2, CONFIG.block_size)
    with torch.no_grad():
        full, _ = model(idx)
        kv_cache = new_kv_cache(model)
        chunks = [model(idx[:, a:b], kv_cache=kv_cache)[0] for a, b in ((0, 6), (6, 10), (10, 11), (11, 16))]
    assert [len(layer) for layer in kv_cache] == [CONFIG.block_size] * CONFIG.n_layer
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-5)


def test_hook_points_during_a_decode_step():
    model = tiny_model()
    idx = tokens(1, 9)
    with torch.no_grad():
        _, full = model.run_with_cache(idx)
        kv_cache = new_kv_cache(model)
        model(idx[:, :8], kv_cache=kv_cache)
        step: dict = {}
        model(idx[:, 8:], cache=step, kv_cache=kv_cache)
    pattern = step["blocks.1.attn.pattern"]
    assert pattern.shape == (1, CONFIG.n_head, 1, 9)  # the new query against every cached key
    assert torch.allclose(pattern[0, :, 0], full["blocks.1.attn.pattern"][0, :, 8], atol=1e-6)
    assert torch.allclose(step["pos_embed"][0, 0], model.wpe.weight[8])  # absolute position 8, not 0
    assert torch.allclose(step["logits"][0, 0], full["logits"][0, 8], atol=1e-5)


def test_kv_cache_cannot_grow_past_block_size():
    model = tiny_model()
    kv_cache = new_kv_cache(model)
    with torch.no_grad():
        model(tokens(1, CONFIG.block_size), kv_cache=kv_cache)
        with pytest.raises(ValueError, match="sequence length 17 exceeds block_size 16"):
            model(tokens(1, 1), kv_cache=kv_cache)
