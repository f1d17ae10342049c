"""Grouped-query and multi-query attention (model.n_kv_head): n_kv_head = n_head is today's attention
exactly; fewer key/value heads are shared by groups of query heads, the KV cache holds only them, and
generation, interventions, ablation, the trace and a run (train, resume, analyse, sample) work."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from glassbox import metric_keys as keys
from glassbox.analysis.ablation import AblationSpec, head_ablation
from glassbox.analysis.suites import Prompt
from glassbox.analysis.trace import build_trace
from glassbox.analyze import analyze
from glassbox.config import validate
from glassbox.edits import add, zero
from glassbox.errors import EXIT_USER_ERROR, GlassboxError
from glassbox.generation import Throughput, generate, generation_steps, new_kv_cache, timed_steps
from glassbox.model import GPT, GPTConfig, Hooks, describe_heads
from glassbox.prepare import prepare
from glassbox.report.trace_text import format_generation
from glassbox.run.layout import read_run_state, snapshot_path
from glassbox.run.snapshots import check_fits, load_snapshot, model_args
from glassbox.sample import sample
from glassbox.text.vocab import Vocab
from glassbox.train import train
from helpers import compose_config, project_with_corpus, run_stage, stage_config

BASE = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=4, n_embd=32)  # head size 8
HEAD_DIM = BASE.n_embd // BASE.n_head


def model_of(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(dataclasses.replace(BASE, **overrides)).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, BASE.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


def heads_of(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, n_heads · hd] -> [B, n_heads, T, hd]."""
    return t.view(t.size(0), t.size(1), n_heads, -1).transpose(1, 2)


# ---------------------------------------------------------------- n_kv_head = n_head is today's model


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_n_kv_head_equal_to_n_head_is_todays_attention_exactly(pos_encoding):
    default, explicit = model_of(pos_encoding=pos_encoding), model_of(pos_encoding=pos_encoding, n_kv_head=4)
    assert {k: v.shape for k, v in default.state_dict().items()} == {
        k: v.shape for k, v in explicit.state_dict().items()
    }
    assert default.blocks[0].attn.c_attn.weight.shape == (3 * BASE.n_embd, BASE.n_embd)  # GPT-2's c_attn
    assert all(torch.equal(v, explicit.state_dict()[k]) for k, v in default.state_dict().items())
    idx = tokens(3, BASE.block_size)
    with torch.no_grad():
        assert torch.equal(default(idx)[0], explicit(idx)[0])
        assert torch.equal(default.run_with_cache(idx)[0], explicit.run_with_cache(idx)[0])
        if pos_encoding == "learned":
            # Today's attention, as it was written before n_kv_head: c_attn split into three n_embd-wide
            # thirds, each viewed as n_head heads, the fused causal kernel, c_proj. Bit for bit.
            attn, x = (
                explicit.blocks[0].attn,
                torch.randn(3, 9, BASE.n_embd, generator=torch.Generator().manual_seed(2)),
            )
            q, k, v = (heads_of(t, BASE.n_head) for t in attn.c_attn(x).split(BASE.n_embd, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(3, 9, BASE.n_embd)
            assert torch.equal(attn(x, torch.arange(9), Hooks()), attn.c_proj(y))


def test_old_snapshot_args_without_n_kv_head_read_as_one_kv_head_per_query_head():
    model = model_of()
    old_args = {k: v for k, v in model_args(model).items() if k != "n_kv_head"}  # as saved before the option
    rebuilt = GPT(GPTConfig(**old_args))
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config.kv_heads == BASE.n_head and model_args(rebuilt)["n_kv_head"] == BASE.n_head


# ---------------------------------------------------------------- sharing keys and values


def reference_attention(model: GPT, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block 0's attention written out head by head (learned positions): query head h reads key/value
    head h // (n_head / n_kv_head). Returns (output [B, T, d], pattern [B, H, T, T])."""
    attn, config = model.blocks[0].attn, model.config
    kv_width = config.kv_heads * HEAD_DIM
    q, k, v = attn.c_attn(x).split([config.n_embd, kv_width, kv_width], dim=2)
    group = config.n_head // config.kv_heads
    future = torch.ones(x.size(1), x.size(1), dtype=torch.bool).triu(1)
    outputs, patterns = [], []
    for h in range(config.n_head):
        kv = slice((h // group) * HEAD_DIM, (h // group + 1) * HEAD_DIM)
        scores = q[..., h * HEAD_DIM : (h + 1) * HEAD_DIM] @ k[..., kv].transpose(-2, -1) / math.sqrt(HEAD_DIM)
        pattern = scores.masked_fill(future, float("-inf")).softmax(-1)
        patterns.append(pattern)
        outputs.append(pattern @ v[..., kv])
    return attn.c_proj(torch.cat(outputs, dim=-1)), torch.stack(patterns, dim=1)


@torch.no_grad()
@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_each_query_head_reads_its_groups_keys_and_values(n_kv_head):
    model = model_of(n_kv_head=n_kv_head)
    x = torch.randn(2, 7, BASE.n_embd, generator=torch.Generator().manual_seed(3))
    expected, expected_pattern = reference_attention(model, x)
    fast = model.blocks[0].attn(x, torch.arange(7), Hooks())
    cache: dict = {}
    explicit = model.blocks[0].attn(x, torch.arange(7), Hooks(cache))
    assert torch.allclose(fast, expected, atol=1e-6) and torch.allclose(explicit, expected, atol=1e-6)
    assert cache["blocks.0.attn.pattern"].shape == (2, BASE.n_head, 7, 7)  # one pattern per query head
    assert torch.allclose(cache["blocks.0.attn.pattern"], expected_pattern, atol=1e-6)
    assert cache["blocks.0.attn.head_out"].shape == (2, 7, BASE.n_head, HEAD_DIM)
    assert model.config.kv_groups() == [
        list(range(i * 4 // n_kv_head, (i + 1) * 4 // n_kv_head)) for i in range(n_kv_head)
    ]


@torch.no_grad()
def test_rope_keys_are_recorded_per_key_value_head_and_give_back_every_query_heads_pattern():
    model = model_of(pos_encoding="rope", n_kv_head=2)
    _, cache = model.run_with_cache(tokens(2, 6))
    q_rot, k_rot = cache["blocks.1.attn.q_rot"], cache["blocks.1.attn.k_rot"]
    assert q_rot.shape == (2, 4, 6, HEAD_DIM) and k_rot.shape == (2, 2, 6, HEAD_DIM)
    scores = q_rot @ k_rot.repeat_interleave(2, dim=1).transpose(-2, -1) / math.sqrt(HEAD_DIM)
    pattern = scores.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    assert torch.allclose(pattern, cache["blocks.1.attn.pattern"], atol=1e-6)


def test_fewer_key_value_heads_mean_a_narrower_c_attn():
    for n_kv_head in (1, 2):
        model = model_of(n_kv_head=n_kv_head)
        assert model.blocks[0].attn.c_attn.weight.shape == (BASE.n_embd + 2 * n_kv_head * HEAD_DIM, BASE.n_embd)
        saved_per_layer = 2 * (BASE.n_head - n_kv_head) * HEAD_DIM * BASE.n_embd
        assert model_of().num_params() - model.num_params() == BASE.n_layer * saved_per_layer


# ---------------------------------------------------------------- generation and the KV cache


@torch.no_grad()
@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_generation_with_the_cache_equals_generation_without_it(n_kv_head, pos_encoding):
    model = model_of(n_kv_head=n_kv_head, pos_encoding=pos_encoding)
    prompt = tokens(2, 5)
    cached = generate(model, prompt, 20, temperature=0.0)  # crosses block_size (16): re-encodes too
    assert torch.equal(cached, generate(model, prompt, 20, temperature=0.0, use_cache=False))
    kv_cache = new_kv_cache(model)
    model(cached[:, :5], kv_cache=kv_cache)
    for t in range(5, BASE.block_size):
        step, _ = model(cached[:, t : t + 1], kv_cache=kv_cache)
        assert torch.allclose(step[:, -1], model(cached[:, : t + 1])[0][:, -1], atol=1e-5)
    assert kv_cache[0].keys.shape == kv_cache[0].values.shape == (2, n_kv_head, BASE.block_size, HEAD_DIM)


@torch.no_grad()
@pytest.mark.parametrize(
    "interventions",
    [
        {"blocks.0.resid_post": add(torch.linspace(-3, 3, BASE.n_embd))},
        {"blocks.1.attn.head_out": zero(heads=[1])},
        {"blocks.1.attn.pattern": lambda p: p.roll(1, dims=1)},
    ],
    ids=["steer", "ablate", "pattern"],
)
def test_cached_and_uncached_generation_agree_under_an_intervention(interventions):
    model = model_of(n_kv_head=2)
    for param in model.parameters():
        param.mul_(5)  # sharper, like a trained model's
    prompt = tokens(2, 4)
    cached = generate(model, prompt, 8, temperature=0.0, interventions=interventions)
    assert torch.equal(
        cached, generate(model, prompt, 8, temperature=0.0, use_cache=False, interventions=interventions)
    )
    assert not torch.allclose(model(cached, interventions=interventions)[0], model(cached)[0], atol=1e-3)


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_kv_cache_bytes_are_two_vectors_per_layer_key_value_head_and_token(n_kv_head):
    model = model_of(n_kv_head=n_kv_head)
    speed = Throughput()
    steps = generation_steps(model, tokens(3, 4), 6, 0.0)
    for _ in timed_steps(steps, speed, torch.device("cpu")):
        pass
    # 3 sequences of 4 + 5 tokens (the last drawn token is never run), float32
    expected = 2 * BASE.n_layer * n_kv_head * HEAD_DIM * 9 * 3 * 4
    assert speed.kv_cache_bytes == model.config.kv_cache_bytes(9, batch=3) == expected
    assert model_of().config.kv_cache_bytes(9, batch=3) == expected * (BASE.n_head // n_kv_head)  # the saving
    assert "KV cache: " + f"{expected:,} bytes" in speed.describe(3, BASE.block_size)


# ---------------------------------------------------------------- ablation and the trace


@torch.no_grad()
def test_head_ablation_ablates_each_query_head():
    model = model_of(n_kv_head=1)
    vocab = Vocab(itos=[chr(97 + i) for i in range(BASE.vocab_size)], counts=[1] * BASE.vocab_size)
    inputs = tokens(4, 8)
    spec = AblationSpec("zero", [Prompt("abc", vocab.encode("abc"))], inputs, tokens(4, 8, seed=2))
    result = head_ablation(model, spec, vocab.itos)
    assert sorted(result["scalars"]) == sorted(keys.ablation_dloss(f"L{i}", h) for i in range(2) for h in range(4))
    dlosses = [h["dloss"] for h in result["heads"]]
    assert len(set(dlosses)) == len(dlosses)  # the query heads sharing one key/value head are ablated apart


def test_the_trace_shows_which_query_heads_share_a_key_value_head_and_the_caches_bytes():
    model = model_of(n_kv_head=2)
    vocab = Vocab(itos=[chr(97 + i) for i in range(BASE.vocab_size)], counts=[1] * BASE.vocab_size)
    trace = build_trace(
        model, vocab, "abcde", temperature=0.0, top_k=None, gen_tokens=4, layer=1, head=3, sample_seed=0
    )
    gen = trace["generation"]
    assert gen["kv_groups"] == [[0, 1], [2, 3]]
    assert gen["prefill_kv"] == [[[1, 2, 5, HEAD_DIM]] * 2] * BASE.n_layer
    assert gen["kv_bytes"] == {"prefill": model.config.kv_cache_bytes(5), "largest": model.config.kv_cache_bytes(8)}
    assert gen["uncached_same_text"]
    shown = format_generation(trace)
    assert "query heads 0, 1 read key/value head 0; query heads 2, 3 read key/value head 1" in shown
    assert f"{model.config.kv_cache_bytes(5):,} bytes after the prefill" in shown
    assert describe_heads(4, 1) == "4 heads sharing 1 key/value head (multi-query)"
    assert describe_heads(4, None) == describe_heads(4, 4) == "4 heads"


# ---------------------------------------------------------------- the config


@pytest.mark.parametrize("n_kv_head", [3, 8])
def test_an_n_kv_head_that_does_not_divide_n_head_is_refused(n_kv_head):
    with pytest.raises(ValueError, match=rf"model.n_kv_head \({n_kv_head}\) must divide n_head \(4\).*1, 2, 4"):
        dataclasses.replace(BASE, n_kv_head=n_kv_head)
    cfg = compose_config(
        "train", ["experiment=tiny", "model.n_head=4", "model.n_embd=32", f"model.n_kv_head={n_kv_head}"]
    )
    with pytest.raises(GlassboxError, match=rf"model: model.n_kv_head \({n_kv_head}\) must divide n_head \(4\)"):
        validate(cfg, "train")


def test_n_kv_head_must_be_positive():
    cfg = compose_config("train", ["experiment=tiny", "model.n_kv_head=0"])
    with pytest.raises(GlassboxError, match=r"model.n_kv_head=0: Input should be greater than 0"):
        validate(cfg, "train")


def test_a_snapshot_is_refused_by_a_model_with_other_key_value_heads():
    grouped = model_of(n_kv_head=2)

    class Saved:  # what check_fits reads of a snapshot
        path, model_args, vocab_hash = Path("step_2.pt"), model_args(grouped), "hash"

    check_fits(Saved, model_args(model_of(n_kv_head=2)), "hash")
    with pytest.raises(GlassboxError, match=re.escape("model.n_kv_head: snapshot 2, now 4")):
        check_fits(Saved, model_args(model_of()), "hash")


# ---------------------------------------------------------------- a run, end to end

GQA = ["experiment=tiny", "train.device=cpu", "train.max_iters=16", "model.n_head=4", "model.n_kv_head=2"]


@pytest.fixture(scope="module")
def gqa_root(tmp_path_factory) -> Path:
    root = project_with_corpus(tmp_path_factory.mktemp("gqa"))
    prepare(stage_config("prepare", root, *GQA))
    return root


@pytest.mark.slow
def test_a_grouped_query_run_trains_resumes_analyses_and_samples(gqa_root, tmp_path, caplog):
    run_dir = train(stage_config("train", gqa_root, *GQA), gqa_root / "outputs" / "tiny" / "gqa")
    final = load_snapshot(snapshot_path(run_dir, 16))
    assert final.model_args["n_kv_head"] == 2
    assert final.weights["blocks.0.attn.c_attn.weight"].shape == (32 + 2 * 2 * 8, 32)

    resumed = train(
        stage_config("train", gqa_root, *GQA, f"train.resume={snapshot_path(run_dir, 8)}"),
        gqa_root / "outputs" / "tiny" / "gqa-resume",
    )
    assert resumed == run_dir and read_run_state(run_dir)["resumed_at"] == [8]
    again = load_snapshot(snapshot_path(run_dir, 16))
    assert all(torch.equal(again.weights[k], final.weights[k]) for k in final.weights)

    report_dir = analyze(stage_config("analyze", gqa_root, *GQA, f"run={run_dir}"), run_dir / "analysis" / "a")
    analysis = json.loads((report_dir / "analysis.json").read_text())
    assert [s["step"] for s in analysis["snapshots"]] == [0, 1, 2, 4, 8, 16]
    assert set(analysis["suites"]) <= set(analysis["snapshots"][-1])  # every suite ran
    assert "4 heads sharing 2 key/value heads (grouped-query)" in (report_dir / "report.md").read_text()

    caplog.set_level(logging.INFO)
    caplog.clear()
    written = sample(
        stage_config("sample", gqa_root, *GQA, f"run={run_dir}", "num_samples=2", "max_new_tokens=10"), tmp_path
    )
    prompt_length = len(written["prompts"][0]["prompt"])
    expected = final.model().config.kv_cache_bytes(min(prompt_length + 9, 32), batch=2)
    assert written["speed"]["kv_cache_bytes"] == expected
    assert f"KV cache: {expected:,} bytes at its largest" in caplog.text  # sample logs what it prints


@pytest.mark.slow
def test_a_bad_n_kv_head_exits_2_before_anything_is_written(tmp_path):
    done = run_stage("train", ["experiment=tiny", "model.n_head=4", "model.n_kv_head=3"], tmp_path, timeout=120)
    assert done.returncode == EXIT_USER_ERROR and "Traceback" not in done.stderr
    assert "model.n_kv_head (3) must divide n_head (4)" in done.stderr
    assert not (tmp_path / "outputs").exists()
