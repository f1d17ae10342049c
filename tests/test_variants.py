"""The model variants: position encodings (learned, sinusoidal, rope, none), RMSNorm and SwiGLU."""

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from glassbox import hooks
from glassbox.analyze import analyze
from glassbox.errors import GlassboxError
from glassbox.generation import generate, new_kv_cache
from glassbox.model import GPT, GPTConfig, apply_rope, position_angles, sinusoidal_table, swiglu_hidden_size
from glassbox.paths import CONF_DIR
from glassbox.prepare import prepare
from glassbox.run.layout import read_run_state, snapshot_path
from glassbox.run.snapshots import Snapshot, check_fits, load_payload, load_snapshot, model_args
from glassbox.train import train
from helpers import project_with_corpus, stage_config

BASE = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32)
VARIANTS = {
    "default": {},
    "sinusoidal": {"pos_encoding": "sinusoidal"},
    "rope": {"pos_encoding": "rope"},
    "none": {"pos_encoding": "none"},
    "rmsnorm": {"norm": "rmsnorm"},
    "swiglu": {"mlp": "swiglu"},
    "llama-style": {"pos_encoding": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": True},
}


def model_of(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(dataclasses.replace(BASE, **overrides)).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, BASE.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the defaults are today's model


def test_default_model_has_todays_parameter_names():
    assert list(model_of().state_dict()) == [
        "wte.weight",
        "wpe.weight",
        "blocks.0.ln_1.weight",
        "blocks.0.attn.c_attn.weight",
        "blocks.0.attn.c_proj.weight",
        "blocks.0.ln_2.weight",
        "blocks.0.mlp.c_fc.weight",
        "blocks.0.mlp.c_proj.weight",
        "blocks.1.ln_1.weight",
        "blocks.1.attn.c_attn.weight",
        "blocks.1.attn.c_proj.weight",
        "blocks.1.ln_2.weight",
        "blocks.1.mlp.c_fc.weight",
        "blocks.1.mlp.c_proj.weight",
        "ln_f.weight",
        "lm_head.weight",
    ]


def test_default_model_has_todays_seeded_weights():
    # Values of the model as built before the variants existed (same seed): they pin the order in
    # which weights are created and initialised and how many random numbers that takes, so old
    # snapshots' seeds still give the same model. (Only a change in torch's own RNG could move them.)
    state = model_of().state_dict()
    expected = {
        "wte.weight": (-0.029838668182492256, -0.005259184166789055, 0.015453684143722057),
        "wpe.weight": (-0.0031186603009700775, 0.026817888021469116, -0.01797829382121563),
        "blocks.0.attn.c_attn.weight": (-0.013361343182623386, 0.008681494742631912, 0.014041218906641006),
        "blocks.1.mlp.c_proj.weight": (-0.02268347144126892, 0.0018565673381090164, -0.006509426049888134),
    }
    for name, (first, second, last) in expected.items():
        values = state[name].flatten()
        assert (values[0].item(), values[1].item(), values[-1].item()) == pytest.approx((first, second, last), abs=1e-9)
    assert torch.rand(1).item() == pytest.approx(0.9944056868553162, abs=1e-9)  # no extra random draws


def test_old_snapshot_args_without_the_new_keys_load_as_the_default_model():
    model = model_of()
    old_args = {k: v for k, v in dataclasses.asdict(model.config).items() if k not in ("pos_encoding", "norm", "mlp")}
    rebuilt = GPT(GPTConfig(**old_args))
    rebuilt.load_state_dict(model.state_dict())
    assert (rebuilt.config.pos_encoding, rebuilt.config.norm, rebuilt.config.mlp) == ("learned", "layernorm", "gelu")


def test_the_variant_is_recorded_in_the_model_args():
    args = dataclasses.asdict(dataclasses.replace(BASE, **VARIANTS["llama-style"]))
    assert (args["pos_encoding"], args["norm"], args["mlp"]) == ("rope", "rmsnorm", "swiglu")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pos_encoding": "alibi"}, r"model.pos_encoding must be one of learned, sinusoidal, rope, none \(got 'alib"),
        ({"norm": "batchnorm"}, r"model.norm must be one of layernorm, rmsnorm \(got 'batchnorm'\)"),
        ({"mlp": "relu"}, r"model.mlp must be one of gelu, swiglu \(got 'relu'\)"),
        ({"pos_encoding": "rope", "n_embd": 30, "n_head": 2}, r"model.pos_encoding=rope .* even \(got 30 / 2 = 15\)"),
    ],
)
def test_unknown_options_raise_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **overrides)


def test_llama_style_config_is_the_seed_size_with_the_modern_block():
    seed = OmegaConf.load(CONF_DIR / "model" / "seed.yaml")
    llama = OmegaConf.load(CONF_DIR / "model" / "llama-style.yaml")
    sizes = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")
    assert {k: llama[k] for k in sizes} == {k: seed[k] for k in sizes}
    config = GPTConfig(vocab_size=4490, **llama)
    assert (config.pos_encoding, config.norm, config.mlp) == ("rope", "rmsnorm", "swiglu")
    assert GPTConfig(vocab_size=4490, **seed) == GPTConfig(vocab_size=4490)  # seed.yaml spells out the defaults


# ---------------------------------------------------------------- every variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_hook_point_path_matches_fast_path(variant):
    model = model_of(**VARIANTS[variant])
    idx = tokens(3, BASE.block_size)
    with torch.no_grad():
        fast, _ = model(idx)
        hooked, cache = model.run_with_cache(idx)
    assert torch.allclose(fast, hooked, atol=1e-5)
    assert torch.equal(cache["logits"], hooked)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_and_uncached_greedy_generation_agree(variant):
    model = model_of(**VARIANTS[variant])
    prompt = tokens(2, 5)
    n = 20  # crosses block_size (16)
    cached = generate(model, prompt, n, temperature=0.0)
    assert torch.equal(cached, generate(model, prompt, n, temperature=0.0, use_cache=False))
    with torch.no_grad():  # the decode steps' logits, against a plain forward over each step's context
        kv_cache = new_kv_cache(model)
        model(cached[:, :5], kv_cache=kv_cache)
        for t in range(5, BASE.block_size):
            step, _ = model(cached[:, t : t + 1], kv_cache=kv_cache)
            full, _ = model(cached[:, : t + 1])
            assert torch.allclose(step[:, -1], full[:, -1], atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_later_tokens_never_change_earlier_logits(variant):
    model = model_of(**VARIANTS[variant])
    idx = tokens(1, BASE.block_size)
    changed = idx.clone()
    changed[0, 9:] = (changed[0, 9:] + 1) % BASE.vocab_size
    with torch.no_grad():
        before, after = model(idx)[0], model(changed)[0]
    assert torch.allclose(before[0, :9], after[0, :9], atol=1e-6)
    assert not torch.allclose(before[0, 9:], after[0, 9:])


@pytest.mark.parametrize("variant", VARIANTS)
def test_hook_points_of_each_variant(variant):
    model = model_of(**VARIANTS[variant])
    B, T, H, hd = 2, 7, BASE.n_head, BASE.n_embd // BASE.n_head
    _, cache = model.run_with_cache(tokens(B, T))
    rope = model.config.pos_encoding == "rope"
    adds_position = model.config.pos_encoding in ("learned", "sinusoidal")
    assert ("pos_embed" in cache) == adds_position
    for i in range(BASE.n_layer):
        assert all(f"blocks.{i}.{point}" in cache for point in ("resid_pre", "resid_mid", "resid_post", "attn.pattern"))
        assert (f"blocks.{i}.attn.q_rot" in cache) == (f"blocks.{i}.attn.k_rot" in cache) == rope
        assert (hooks.act_name("q_rot", i) in cache) == (hooks.act_name("k_rot", i) in cache) == rope  # one spelling
    assert "ln_final" in cache and "logits" in cache
    if not adds_position:
        assert torch.equal(cache["blocks.0.resid_pre"], cache["embed"])  # nothing added to the input
    if rope:
        q_rot, k_rot = cache["blocks.1.attn.q_rot"], cache["blocks.1.attn.k_rot"]
        assert q_rot.shape == k_rot.shape == (B, H, T, hd)
        # The recorded q and k are the ones attention used: they give back its pattern.
        scores = (q_rot @ k_rot.transpose(-2, -1)) / math.sqrt(hd)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        assert torch.allclose(
            scores.masked_fill(future, float("-inf")).softmax(-1), cache["blocks.1.attn.pattern"], atol=1e-6
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_flops_per_token_count_every_multiplied_matrix(variant):
    model = model_of(**VARIANTS[variant])
    c = model.config
    lookup_only = c.block_size * c.n_embd if c.pos_encoding == "learned" else 0
    assert model.flops_per_token() == 6 * (model.num_params() - lookup_only) + 12 * c.n_layer * c.n_embd * c.block_size


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize("d", [10, 7])  # an odd width ends with a sin column
def test_sinusoidal_table_is_the_formula(d):
    n_positions = 12
    table = sinusoidal_table(n_positions, d)
    assert table.shape == (n_positions, d)
    for pos in range(n_positions):
        for column in range(d):
            angle = pos / 10000 ** (2 * (column // 2) / d)  # columns 2i and 2i+1 share an angle
            wave = math.sin if column % 2 == 0 else math.cos
            assert table[pos, column].item() == pytest.approx(wave(angle), abs=1e-6)


def test_sinusoidal_positions_are_a_fixed_buffer_added_to_the_input():
    model = model_of(pos_encoding="sinusoidal")
    assert not any(name.startswith("wpe") for name, _ in model.named_parameters())
    assert "wpe.table" not in model.state_dict()  # recomputed from the formula, not saved
    _, cache = model.run_with_cache(tokens(2, 9))
    assert torch.equal(cache["pos_embed"][1], sinusoidal_table(BASE.block_size, BASE.n_embd)[:9])
    assert torch.equal(cache["blocks.0.resid_pre"], cache["embed"] + cache["pos_embed"])


@pytest.mark.parametrize("pos_encoding", ["rope", "none"])
def test_rope_and_none_have_no_position_weights(pos_encoding):
    model = model_of(pos_encoding=pos_encoding)
    assert model.wpe is None
    assert not any("wpe" in name for name in model.state_dict())
    assert model.num_params() == model_of().num_params() - BASE.block_size * BASE.n_embd


def test_position_angles_per_dimension_pair():
    angles = position_angles(torch.tensor(5), 8)
    assert angles.tolist() == pytest.approx([5 / 10000 ** (2 * i / 8) for i in range(4)])
    assert position_angles(torch.arange(3), 8).shape == (3, 4)


def test_rope_rotates_each_pair_keeping_its_length():
    x = torch.randn(1, 2, 6, 8, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(6)
    rotated = apply_rope(x, positions)
    pair_length = lambda t: t.unflatten(-1, (4, 2)).norm(dim=-1)  # noqa: E731
    assert torch.allclose(pair_length(rotated), pair_length(x), atol=1e-6)
    assert torch.equal(rotated[:, :, 0], x[:, :, 0])  # position 0: angle 0
    angle = position_angles(torch.tensor(3), 8)[1].item()  # position 3, pair 1 (dimensions 2 and 3)
    a, b = x[0, 0, 3, 2].item(), x[0, 0, 3, 3].item()
    expected = [a * math.cos(angle) - b * math.sin(angle), a * math.sin(angle) + b * math.cos(angle)]
    assert rotated[0, 0, 3, 2:4].tolist() == pytest.approx(expected, abs=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 1, 3, 10, 16, generator=g)
    positions = torch.arange(10)
    scores = lambda pos_q, pos_k: apply_rope(q, pos_q) @ apply_rope(k, pos_k).transpose(-2, -1)  # noqa: E731
    base = scores(positions, positions)
    for offset in (1, 7, 100):
        shifted = positions + offset
        assert torch.allclose(scores(shifted, shifted), base, atol=1e-5)
    assert not torch.allclose(scores(positions + 3, positions), base, atol=1e-2)  # relative positions changed


def test_rope_model_keys_are_rotated_at_their_absolute_position_in_the_cache():
    model = model_of(pos_encoding="rope")
    idx = tokens(1, 10)
    with torch.no_grad():
        _, full = model.run_with_cache(idx)
        kv_cache = new_kv_cache(model)
        model(idx[:, :9], kv_cache=kv_cache)
        step: dict = {}
        model(idx[:, 9:], cache=step, kv_cache=kv_cache)
    assert torch.allclose(step["blocks.1.attn.k_rot"][0, :, 0], full["blocks.1.attn.k_rot"][0, :, 9], atol=1e-6)
    assert torch.allclose(kv_cache[1].keys, full["blocks.1.attn.k_rot"], atol=1e-6)


def test_nope_model_still_learns_a_repeated_pattern():
    model = model_of(pos_encoding="none").train()
    data = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3]).repeat(5)
    idx = torch.stack([data[i : i + 16] for i in range(0, 24, 3)])
    targets = torch.stack([data[i + 1 : i + 17] for i in range(0, 24, 3)])
    optimizer = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.95), device_type="cpu")
    _, first_loss = model(idx, targets)
    for _ in range(40):
        _, loss = model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert first_loss.item() > 2.5  # about ln 20: uniform guessing
    assert loss.item() < 0.5


# ---------------------------------------------------------------- norm and MLP


def test_rmsnorm_scales_to_unit_root_mean_square_without_centring():
    model = model_of(norm="rmsnorm")
    assert type(model.ln_f).__name__ == "RMSNorm"
    x = torch.randn(3, 5, BASE.n_embd, generator=torch.Generator().manual_seed(2)) * 4 + 1
    with torch.no_grad():
        model.ln_f.weight.fill_(2.0)
        normed = model.ln_f(x)
    expected = 2.0 * x / x.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()
    assert torch.allclose(normed, expected, atol=1e-5)
    assert normed.mean().item() > 0.3  # x has mean 1: unlike LayerNorm, RMSNorm does not remove it
    assert "ln_f.bias" not in dict(model_of(norm="rmsnorm", bias=True).named_parameters())  # no bias, ever


@pytest.mark.parametrize(("n_embd", "hidden"), [(32, 88), (256, 680), (384, 1024)])
def test_swiglu_hidden_size_keeps_the_gelu_parameter_count(n_embd, hidden):
    assert swiglu_hidden_size(n_embd) == hidden
    assert hidden % 8 == 0
    assert 3 * n_embd * hidden == pytest.approx(8 * n_embd**2, rel=0.04)


def test_swiglu_mlp_is_gated():
    model = model_of(mlp="swiglu")
    mlp = model.blocks[0].mlp
    hidden = swiglu_hidden_size(BASE.n_embd)
    assert {name: tuple(p.shape) for name, p in mlp.named_parameters()} == {
        "c_fc.weight": (hidden, BASE.n_embd),
        "c_gate.weight": (hidden, BASE.n_embd),
        "c_proj.weight": (BASE.n_embd, hidden),
    }
    x = torch.randn(2, 3, BASE.n_embd, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = mlp.c_proj(torch.nn.functional.silu(mlp.c_gate(x)) * mlp.c_fc(x))
        assert torch.allclose(mlp(x), expected)
    assert mlp.c_proj.weight.std().item() < 0.02 / math.sqrt(2 * BASE.n_layer) * 1.2  # residual-scaled init


# ---------------------------------------------------------------- snapshots of each variant, end to end

E2E_VARIANTS = {
    "sinusoidal": ["model.pos_encoding=sinusoidal"],
    "none": ["model.pos_encoding=none"],
    "llama-style": ["model.pos_encoding=rope", "model.norm=rmsnorm", "model.mlp=swiglu"],
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A project with the tiny experiment's corpus prepared, shared by the tests below."""
    root = project_with_corpus(tmp_path_factory.mktemp("variants"))
    prepare(tiny_cfg("prepare", root))
    return root


def tiny_cfg(config_name: str, root: Path, *overrides: str):
    """`make <stage> EXPERIMENT=tiny` cut to 16 steps (snapshots 0, 1, 2, 4, 8, 16), W&B off."""
    return stage_config(config_name, root, "experiment=tiny", "train.device=cpu", "train.max_iters=16", *overrides)


@pytest.mark.e2e
@pytest.mark.parametrize("variant", E2E_VARIANTS)
def test_a_snapshot_of_each_variant_resumes_and_analyses(tiny_root, variant):
    overrides = E2E_VARIANTS[variant]
    run_dir = train(tiny_cfg("train", tiny_root, *overrides), tiny_root / "outputs" / "tiny" / variant)
    final = load_snapshot(snapshot_path(run_dir, 16))
    assert f"model.pos_encoding={final.model_args['pos_encoding']}" in overrides  # the variant was trained

    # Continue from the step-8 snapshot: the run is rewound to 8 and trained again to the same end.
    resumed = train(
        tiny_cfg("train", tiny_root, *overrides, f"train.resume={snapshot_path(run_dir, 8)}"),
        tiny_root / "outputs" / "tiny" / f"{variant}-resume",
    )
    assert resumed == run_dir and read_run_state(run_dir)["resumed_at"] == [8]
    again = load_snapshot(snapshot_path(run_dir, 16))
    assert all(torch.equal(again.weights[k], final.weights[k]) for k in final.weights)

    report_dir = analyze(tiny_cfg("analyze", tiny_root, *overrides, f"run={run_dir}"), run_dir / "analysis" / "a")
    analysis = json.loads((report_dir / "analysis.json").read_text())
    assert [s["step"] for s in analysis["snapshots"]] == [0, 1, 2, 4, 8, 16]
    assert set(analysis["suites"]) <= set(analysis["snapshots"][-1])  # every suite ran on every variant
    report = (report_dir / "report.md").read_text()
    norm = "RMSNorm" if "model.norm=rmsnorm" in overrides else "LayerNorm"
    assert f"through the final {norm} and lm_head" in report
    assert f"pos_encoding={final.model_args['pos_encoding']}" in report


def test_a_snapshot_is_refused_by_a_model_of_another_variant(tiny_root):
    run_dir = train(
        tiny_cfg("train", tiny_root, "model.pos_encoding=rope", "train.max_iters=2"),
        tiny_root / "outputs" / "tiny" / "rope-2",
    )
    snapshot = snapshot_path(run_dir, 2)
    for wrong, message in [
        ("model.pos_encoding=learned", "model.pos_encoding: snapshot 'rope', now 'learned'"),
        ("model.mlp=swiglu", "model.mlp: snapshot 'gelu', now 'swiglu'"),
    ]:
        cfg = tiny_cfg(
            "train", tiny_root, "model.pos_encoding=rope", wrong, "train.max_iters=2", f"train.resume={snapshot}"
        )
        with pytest.raises(GlassboxError, match=re.escape(message)):
            train(cfg, tiny_root / "outputs" / "tiny" / "never-made")
    assert not (tiny_root / "outputs" / "tiny" / "never-made").exists()


def test_a_snapshot_from_before_the_variants_reads_as_the_default_model(tiny_root):
    run_dir = train(tiny_cfg("train", tiny_root, "train.max_iters=2"), tiny_root / "outputs" / "tiny" / "old")
    path = snapshot_path(run_dir, 2)
    payload = load_payload(path)
    for key in ("pos_encoding", "norm", "mlp"):
        del payload["model_args"][key]  # as snapshots were saved before the options existed
    old = Snapshot.from_payload(path, payload)
    assert (old.model_args["pos_encoding"], old.model_args["norm"], old.model_args["mlp"]) == (
        "learned",
        "layernorm",
        "gelu",
    )
    check_fits(old, model_args(old.model()), old.vocab_hash)  # resumable by today's default model
