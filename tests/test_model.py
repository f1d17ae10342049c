import dataclasses

import pytest
import torch

from glassbox.generation import generate
from glassbox.model import GPT, GPTConfig

TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(dataclasses.replace(TINY, **overrides)).eval()


def random_tokens(batch: int = 3, length: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, TINY.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_inspection_path_matches_fast_path():
    model = tiny_model()
    idx = random_tokens()
    with torch.no_grad():
        fast_logits, _ = model(idx)
        cached_logits, cache = model.run_with_cache(idx)
    assert torch.allclose(fast_logits, cached_logits, atol=1e-5)
    assert torch.equal(cache["logits"], cached_logits)


def test_hook_point_shapes():
    model = tiny_model()
    B, T, d, H, V = 3, 5, TINY.n_embd, TINY.n_head, TINY.vocab_size
    _, cache = model.run_with_cache(random_tokens(B, T))
    expected = {"embed": (B, T, d), "pos_embed": (B, T, d), "ln_final": (B, T, d), "logits": (B, T, V)}
    for i in range(TINY.n_layer):
        for point in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
            expected[f"blocks.{i}.{point}"] = (B, T, d)
        expected[f"blocks.{i}.attn.pattern"] = (B, H, T, T)
        expected[f"blocks.{i}.attn.head_out"] = (B, T, H, d // H)
    assert {name: tuple(t.shape) for name, t in cache.items()} == expected
    assert list(cache) == model.hook_points()  # the same names, in forward order


def test_cache_is_detached_even_with_grad_enabled():
    model = tiny_model()
    logits, cache = model.run_with_cache(random_tokens())
    assert logits.requires_grad  # the caller decides about gradients
    assert all(not t.requires_grad for t in cache.values())


def test_attention_pattern_is_causal_and_normalised():
    model = tiny_model()
    _, cache = model.run_with_cache(random_tokens())
    T = TINY.block_size
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    for i in range(TINY.n_layer):
        pattern = cache[f"blocks.{i}.attn.pattern"]
        assert torch.allclose(pattern.sum(-1), torch.ones(pattern.shape[:-1]), atol=1e-6)
        assert (pattern[..., future] == 0).all()
        assert (pattern[..., ~future] > 0).all()


def test_residual_stream_links_up():
    model = tiny_model()
    idx = random_tokens()
    with torch.no_grad():
        logits, cache = model.run_with_cache(idx)
        last = TINY.n_layer - 1
        assert torch.equal(cache["blocks.0.resid_pre"], cache["embed"] + cache["pos_embed"])
        for i in range(last):
            assert torch.equal(cache[f"blocks.{i}.resid_post"], cache[f"blocks.{i + 1}.resid_pre"])
        assert torch.allclose(model.unembed(cache[f"blocks.{last}.resid_post"]), logits, atol=1e-6)
        assert torch.allclose(model.ln_f(cache[f"blocks.{last}.resid_post"]), cache["ln_final"])


def test_pos_embed_is_the_same_for_every_sequence():
    model = tiny_model()
    _, cache = model.run_with_cache(random_tokens(batch=2))
    assert torch.equal(cache["pos_embed"][0], cache["pos_embed"][1])
    assert torch.equal(cache["pos_embed"][0], model.wpe.weight.detach())


def test_seed_model_size_and_tied_weights():
    model = GPT(GPTConfig(vocab_size=4490))
    assert model.num_params() == 4_330_240
    assert model.lm_head.weight is model.wte.weight
    with torch.no_grad():
        model.wte.weight[0, 0] = 123.0
    assert model.lm_head.weight[0, 0] == 123.0
    assert "lm_head.weight" not in dict(model.named_parameters())  # counted once


def test_residual_projections_get_smaller_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, n_layer=8, n_embd=128, block_size=16))
    expected_proj_std = 0.02 / (2 * 8) ** 0.5
    assert model.blocks[0].mlp.c_proj.weight.std().item() == pytest.approx(expected_proj_std, rel=0.05)
    assert model.blocks[0].attn.c_proj.weight.std().item() == pytest.approx(expected_proj_std, rel=0.1)
    assert model.blocks[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_config_round_trips_through_a_dict():
    model = tiny_model()
    rebuilt = GPT(GPTConfig(**dataclasses.asdict(model.config)))
    rebuilt.load_state_dict(model.state_dict())
    idx = random_tokens()
    assert torch.equal(rebuilt.eval()(idx)[0], model(idx)[0])


def test_later_tokens_never_change_earlier_logits():
    model = tiny_model()
    idx = random_tokens(batch=1)
    changed = idx.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % TINY.vocab_size
    with torch.no_grad():
        before, _ = model(idx)
        after, _ = model(changed)
        before_cached, _ = model.run_with_cache(idx)
        after_cached, _ = model.run_with_cache(changed)
    assert torch.allclose(before[0, :5], after[0, :5], atol=1e-6)
    assert torch.allclose(before_cached[0, :5], after_cached[0, :5], atol=1e-6)
    assert not torch.allclose(before[0, 5:], after[0, 5:])


def test_loss_is_cross_entropy_and_none_without_targets():
    model = tiny_model()
    idx = random_tokens()
    targets = random_tokens(seed=2)
    logits, loss = model(idx, targets)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, TINY.vocab_size), targets.reshape(-1))
    assert torch.allclose(loss, expected)
    assert model(idx)[1] is None


def test_sequence_longer_than_block_size_raises():
    model = tiny_model()
    with pytest.raises(ValueError, match="block_size"):
        model(random_tokens(length=TINY.block_size + 1))


def test_tiny_model_overfits_a_repeated_sequence():
    model = tiny_model(n_embd=32)
    model.train()
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    data = pattern.repeat(4)
    idx = torch.stack([data[i : i + 8] for i in range(0, 16, 2)])
    targets = torch.stack([data[i + 1 : i + 9] for i in range(0, 16, 2)])
    optimizer = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.95), device_type="cpu")
    _, first_loss = model(idx, targets)
    for _ in range(100):
        _, loss = model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert first_loss.item() > 2.0  # ~ln(11) at init
    assert loss.item() < 0.1


def test_weight_decay_groups():
    model = tiny_model(bias=True)
    optimizer = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.95), device_type="cpu")
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    not_decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    params = list(model.parameters())
    assert not decayed & not_decayed
    assert decayed | not_decayed == {id(p) for p in params}
    assert decayed == {id(p) for p in params if p.dim() >= 2}
    assert not_decayed == {id(p) for p in params if p.dim() == 1}
    assert id(model.wte.weight) in decayed
    assert len(optimizer.param_groups[0]["params"]) + len(optimizer.param_groups[1]["params"]) == len(params)


def test_fused_adamw_only_for_cuda():
    model = tiny_model()
    make = lambda device_type: model.configure_optimizer(0.1, 1e-3, (0.9, 0.95), device_type)  # noqa: E731
    assert make("cuda").defaults["fused"] is True
    assert not make("cpu").defaults["fused"]


def test_flops_per_token_formula():
    model = tiny_model()
    c = model.config
    n_matmul = model.num_params() - c.block_size * c.n_embd
    assert model.flops_per_token() == 6 * n_matmul + 12 * c.n_layer * c.n_embd * c.block_size


def test_generate_length_cropping_and_seed():
    model = tiny_model()
    prompt = random_tokens(batch=2, length=3)
    out = generate(model, prompt, max_new_tokens=12, top_k=5, generator=torch.Generator().manual_seed(7))
    assert out.shape == (2, 3 + 12)  # runs past block_size (8) because the context is cropped
    assert torch.equal(out[:, :3], prompt)
    again = generate(model, prompt, max_new_tokens=12, top_k=5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, again)


def test_generate_only_sees_the_last_block_size_tokens():
    model = tiny_model()
    long_prompt = random_tokens(batch=1, length=12)
    cropped_prompt = long_prompt[:, -TINY.block_size :]
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    from_long = generate(model, long_prompt, max_new_tokens=4, generator=seeded())
    from_cropped = generate(model, cropped_prompt, max_new_tokens=4, generator=seeded())
    assert torch.equal(from_long[:, -4:], from_cropped[:, -4:])
