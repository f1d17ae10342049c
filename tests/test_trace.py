"""The trace walkthrough on a tiny checkpoint built here: each stage's data, its text, and its errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from glassbox.analysis.trace import build_trace, bytes_stage
from glassbox.command_line import quote_literal
from glassbox.errors import EXIT_USER_ERROR, GlassboxError
from glassbox.generation import generate
from glassbox.model import GPT, GPTConfig, position_angles, sinusoidal_table
from glassbox.report.trace_text import (
    STAGES,
    format_bytes,
    format_embedding,
    format_generation,
    format_output,
    format_transformer,
    show,
)
from glassbox.run.layout import point_latest, snapshot_path
from glassbox.run.snapshots import load_snapshot, model_args, save_snapshot
from glassbox.sampling import next_token_probs
from glassbox.text.vocab import Vocab
from glassbox.trace import trace
from helpers import run_stage

TEXT = "悟空道：师父，你是我的人了。行者笑道\n不知之"
TINY = GPTConfig(vocab_size=len(set(TEXT)), block_size=8, n_layer=2, n_head=2, n_embd=16)
STEPS = (0, 4)


@pytest.fixture
def tiny_run(make_cfg) -> dict:
    """outputs/xiyouji/<run> with snapshots at steps 0 and 4 of a tiny model, and its vocab.json."""
    config = OmegaConf.to_container(make_cfg("trace", ["experiment=xiyouji"]), resolve=True)
    vocab = Vocab.from_text(TEXT)
    vocab.save(Path(config["paths"]["processed_dir"]) / "vocab.json")
    run_dir = Path(config["paths"]["output_dir"]) / "xiyouji" / "2024-01-01_00-00-00-000000"
    torch.manual_seed(0)
    model = GPT(TINY)
    for step in STEPS:
        if step:  # "training": sharper logits, so the snapshots differ and sampling has favourites
            model.wte.weight.data.mul_(8)
        payload = {
            "step": step,
            "model": model.state_dict(),
            "model_args": model_args(model),
            "vocab_hash": vocab.hash,
            "config": config,
        }
        save_snapshot(snapshot_path(run_dir, step), payload)
    point_latest(run_dir, Path(config["paths"]["output_dir"]), "xiyouji")
    return {"run_dir": run_dir, "vocab": vocab, "make_cfg": make_cfg}


def trace_of(tiny_run: dict, *overrides: str) -> dict:
    """trace() in-process, with the overrides quoted as the command line quotes them."""
    overrides = [quote_literal(arg) for arg in ("experiment=xiyouji", "auto=true", *overrides)]
    return trace(tiny_run["make_cfg"]("trace", overrides))


def tiny_model(tiny_run: dict, step: int = STEPS[-1]) -> GPT:
    return load_snapshot(snapshot_path(tiny_run["run_dir"], step)).model()


def trace_kwargs(**changes) -> dict:
    return {"temperature": 0.8, "top_k": 10, "gen_tokens": 10, "layer": 0, "head": 0, "sample_seed": 1337} | changes


def test_utf8_bytes_of_wukong_dao():
    stage = bytes_stage("悟空道")
    assert [bytes(c["utf8"]).hex(" ").upper() for c in stage] == ["E6 82 9F", "E7 A9 BA", "E9 81 93"]
    assert [c["codepoint"] for c in stage] == [0x609F, 0x7A7A, 0x9053]
    text = format_bytes({"bytes": stage})
    assert "E6 82 9F" in text and "11100110 10000010 10011111" in text and "9 bytes" in text


def test_every_stage_on_the_last_snapshot(tiny_run, capsys):
    stages = trace_of(tiny_run, "prompt=悟空道")
    shown = capsys.readouterr().out
    for title in (
        "1. Raw text",
        "2. Tokenization",
        "3. Token ids",
        "4. Embedding",
        "5. Transformer",
        "6. Output layer",
        "7. Sampling",
        "8. The autoregressive loop",
    ):
        assert title in shown
    assert f"step {STEPS[-1]}" in shown and "E7 A9 BA" in shown

    model, vocab = tiny_model(tiny_run), tiny_run["vocab"]
    ids = vocab.encode("悟空道")
    assert stages["tokens"]["ids"] == ids and stages["tokens"]["vocab_size"] == vocab.size
    assert torch.equal(stages["input"]["idx"], torch.tensor([ids])) and stages["input"]["id_bits"] == 16
    assert "0000 0000 0000 " in shown  # the ids in 16-bit binary

    emb = stages["embedding"]
    assert torch.equal(emb["token"][0], model.wte.weight[ids].detach())
    assert torch.equal(emb["position"][0], model.wpe.weight[:3].detach())
    assert torch.allclose(emb["sum"], emb["token"] + emb["position"])
    assert list(emb["sum"].shape) == [1, 3, TINY.n_embd]

    layers = stages["transformer"]["layers"]
    assert list(layers) == ["embed", "L0", "L1", "final"]
    assert all(layer["shape"] == [1, 3, TINY.n_embd] for layer in layers.values())
    assert layers["embed"]["std"] == pytest.approx(emb["sum"].std().item())
    assert layers["embed"]["max"] == pytest.approx(emb["sum"].abs().max().item())


def test_step_0_is_the_untrained_model(tiny_run, capsys):
    untrained, trained = trace_of(tiny_run, "step=0"), trace_of(tiny_run)
    assert "step 0 is the untrained model" in capsys.readouterr().out
    assert not torch.equal(untrained["embedding"]["token"], trained["embedding"]["token"])


def test_attention_is_causal_and_rows_sum_to_one(tiny_run):
    model, vocab = tiny_model(tiny_run), tiny_run["vocab"]
    stages = build_trace(model, vocab, "悟空道：师父", **trace_kwargs(layer=1, head=1))
    attention = stages["transformer"]["attention"]
    _, cache = model.run_with_cache(torch.tensor([vocab.encode("悟空道：师父")]))
    assert torch.equal(attention, cache["blocks.1.attn.pattern"][0, 1])
    assert torch.allclose(attention.sum(-1), torch.ones(6))
    assert (attention.triu(diagonal=1) == 0).all()
    matrix = format_transformer(stages).splitlines()[-6:]  # one line per query position
    assert [line.count("·") for line in matrix] == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("top_k", [10, 3])
def test_shown_candidates_are_the_sampling_distribution(tiny_run, top_k):
    model, vocab = tiny_model(tiny_run), tiny_run["vocab"]
    stages = build_trace(model, vocab, "悟空道", **trace_kwargs(temperature=0.7, top_k=top_k))
    logits, _ = model(torch.tensor([vocab.encode("悟空道")]))
    softmax = next_token_probs(logits[0, -1], 0.7)
    sampled = next_token_probs(logits[0, -1], 0.7, top_k)
    top = stages["output"]["top"]
    assert [c["id"] for c in top] == logits[0, -1].topk(10).indices.tolist()
    for c in top:
        assert c["softmax"] == pytest.approx(softmax[c["id"]].item(), abs=1e-6)
        assert c["prob"] == pytest.approx(sampled[c["id"]].item(), abs=1e-6)
        assert c["char"] == vocab.itos[c["id"]]
    assert sum(c["prob"] for c in top[:top_k]) == pytest.approx(1.0, abs=1e-5)
    assert all(c["prob"] == 0 for c in top[top_k:])


def test_same_seed_same_text_as_generate(tiny_run):
    model, vocab = tiny_model(tiny_run), tiny_run["vocab"]
    first, again = (build_trace(model, vocab, "悟空道", **trace_kwargs(temperature=1.5)) for _ in range(2))
    other = build_trace(model, vocab, "悟空道", **trace_kwargs(temperature=1.5, sample_seed=7))
    assert first["generation"]["text"] == again["generation"]["text"] != other["generation"]["text"]
    generated = generate(
        model, torch.tensor([vocab.encode("悟空道")]), 10, 1.5, 10, generator=torch.Generator().manual_seed(1337)
    )
    assert first["generation"]["text"] == vocab.decode(generated[0])  # longer than block_size: crops too
    assert first["generation"]["steps"][0]["id"] == first["sample"]["id"]
    assert first["sample"]["text"] == "悟空道" + first["sample"]["char"]


def test_generation_is_a_prefill_then_decode_steps_through_the_kv_cache(tiny_run):
    model, vocab = tiny_model(tiny_run), tiny_run["vocab"]
    stages = build_trace(model, vocab, "悟空道", **trace_kwargs(gen_tokens=10))
    gen = stages["generation"]
    # block_size 8: the 3-token prompt, decode steps until the cache holds 8, then the window is re-encoded
    assert [s["phase"] for s in gen["steps"]] == ["prefill"] + ["decode"] * 5 + ["re-encode"] * 4
    assert [s["n_in"] for s in gen["steps"]] == [3, 1, 1, 1, 1, 1, 8, 8, 8, 8]
    assert [s["n_keys"] for s in gen["steps"]] == [3, 4, 5, 6, 7, 8, 8, 8, 8, 8]
    assert all(s["seconds"] > 0 for s in gen["steps"])
    head_size = TINY.n_embd // TINY.n_head
    assert gen["prefill_kv"] == [[[1, TINY.n_head, 3, head_size]] * 2] * TINY.n_layer  # K and V of each layer
    # Attention scores per layer and head: queries × keys at each step, with the cache and without it
    # (without, every step scores its whole context, at most block_size tokens, against itself).
    assert gen["scores"] == {
        "cached": 3 * 3 + 4 + 5 + 6 + 7 + 8 + 4 * 8 * 8,
        "uncached": sum(min(3 + i, 8) ** 2 for i in range(10)),
    }
    assert gen["positions"] == {"cached": 3 + 5 + 4 * 8, "uncached": sum(min(3 + i, 8) for i in range(10))}
    assert gen["uncached_same_text"]
    text = format_generation(stages)
    assert "Prefill: the prompt's 3 tokens" in text and "[1, 2, 3, 8]" in text
    assert "295 attention scores (query × key) computed with it,\n455 without it" in text
    assert "re-encodes the last block_size" in text and text.count(" decode ") == 5


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal", "rope", "none"])
def test_the_position_step_is_shown_as_the_variant_does_it(tiny_run, pos_encoding):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, pos_encoding=pos_encoding)).eval()
    stages = build_trace(model, tiny_run["vocab"], "悟空道", **trace_kwargs(gen_tokens=3))
    emb, text = stages["embedding"], format_embedding(stages)
    assert ("position" in emb) == (pos_encoding in ("learned", "sinusoidal"))
    assert ("angles" in emb) == (pos_encoding == "rope")
    if pos_encoding == "learned":
        assert torch.equal(emb["position"][0], model.wpe.weight[:3].detach())
        assert "a table learned in training" in text
    if pos_encoding == "sinusoidal":
        assert torch.allclose(emb["position"][0], sinusoidal_table(TINY.block_size, TINY.n_embd)[:3])
        assert "PE(pos, 2i) = sin(pos / 10000^(2i/d))" in text
    if pos_encoding == "rope":
        assert torch.equal(emb["angles"], position_angles(torch.arange(3), TINY.n_embd // TINY.n_head))
        assert "pos_encoding=rope: nothing is added to the input" in text
        assert "turns by pos / 10000^(2i/8) radians" in text and "2.0000" in text  # pair 0 at position 2
    if pos_encoding == "none":
        assert "pos_encoding=none: nothing tells the model where a token is" in text
    if pos_encoding in ("rope", "none"):
        assert torch.equal(emb["sum"], emb["token"]) and "+ position" not in text
    for _, fmt in STAGES:  # every stage's text, for every variant
        fmt(stages)


def test_norm_and_mlp_are_named_as_the_model_has_them(tiny_run):
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(TINY, norm="rmsnorm", mlp="swiglu")).eval()
    stages = build_trace(model, tiny_run["vocab"], "悟空道", **trace_kwargs(gen_tokens=1))
    assert "final RMSNorm's output" in format_output(stages)
    assert "normalised by RMSNorm" in format_transformer(stages) and "SwiGLU" in format_transformer(stages)
    default = build_trace(tiny_model(tiny_run), tiny_run["vocab"], "悟空道", **trace_kwargs(gen_tokens=1))
    assert "final LayerNorm's output" in format_output(default) and "GELU" in format_transformer(default)


def test_top_p_is_part_of_the_distribution_drawn_from(tiny_run):
    model, vocab = tiny_model(tiny_run), tiny_run["vocab"]
    stages = build_trace(model, vocab, "悟空道", **trace_kwargs(top_k=None, top_p=0.5))
    logits, _ = model(torch.tensor([vocab.encode("悟空道")]))
    expected = next_token_probs(logits[0, -1], 0.8, None, 0.5)
    assert torch.allclose(stages["output"]["probs"], expected)
    assert "top_p keeps the fewest whose probability reaches 0.5" in format_output(stages)
    generated = generate(
        model,
        torch.tensor([vocab.encode("悟空道")]),
        10,
        0.8,
        None,
        generator=torch.Generator().manual_seed(1337),
        top_p=0.5,
    )
    assert stages["generation"]["text"] == vocab.decode(generated[0])


def test_long_prompt_is_cropped_with_a_notice(tiny_run, capsys):
    stages = trace_of(tiny_run, "prompt=行者笑道悟空道：师父，你是我")
    assert "".join(stages["tokens"]["chars"]) == "悟空道：师父，你是我"[-TINY.block_size :]
    assert "using its last 8" in capsys.readouterr().out


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prompt=悟空X道Y"], "'X' (U+0058), 'Y' (U+0059)"),
        (["prompt="], "the prompt is empty"),
        (["step=3"], "no snapshot at step 3; the steps it has: 0, 4"),
        (["layer=2"], "layer=2 does not exist"),
        (["head=-1"], "head=-1 does not exist"),
        (["temperature=-1"], "temperature=-1: Input should be greater than or equal to 0"),
    ],
)
def test_bad_input_is_explained(tiny_run, overrides, message):
    with pytest.raises(GlassboxError, match=re.escape(message)):
        trace_of(tiny_run, *overrides)


def test_no_trained_run_names_the_command(make_cfg):
    with pytest.raises(GlassboxError, match="make prepare train EXPERIMENT=shakespeare-big"):
        trace(make_cfg("trace", ["experiment=shakespeare-big", "auto=true"]))


def test_a_different_vocabulary_is_refused(tiny_run):
    other = Vocab.from_text(TEXT + "妖")
    processed_dir = tiny_run["make_cfg"]("trace", ["experiment=xiyouji"]).paths.processed_dir
    other.save(Path(processed_dir) / "vocab.json")
    with pytest.raises(GlassboxError) as err:
        trace_of(tiny_run)
    assert tiny_run["vocab"].hash in str(err.value) and other.hash in str(err.value)


@pytest.mark.parametrize("prompt", ["悟空道", "ROMEO:", "it's", "a\\b\\", "to be, or [not]", "${name}", ""])
def test_any_prompt_passes_hydra_literally(make_cfg, prompt):
    assert make_cfg("trace", [quote_literal(f"prompt={prompt}")]).prompt == prompt


def test_interactive_q_stops_after_the_current_stage(monkeypatch, capsys):
    answers = iter(["", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    show([("one", "A"), ("two", "B"), ("three", "C")], interactive=True)
    out = capsys.readouterr().out
    assert "B" in out and "C" not in out


@pytest.mark.slow
def test_command_line_prints_everything_without_a_tty_and_exits_2_on_errors(tiny_run, workdir):
    ok = run_stage("trace", ["experiment=xiyouji", "prompt=悟空道"], workdir, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "8. The autoregressive loop" in ok.stdout and "E9 81 93" in ok.stdout
    assert sorted(p.name for p in tiny_run["run_dir"].iterdir()) == ["checkpoints", "run.json"]  # traces go elsewhere
    assert (workdir / "outputs" / "xiyouji" / "traces").is_dir()

    bad = run_stage("trace", ["experiment=xiyouji", "prompt=悟空X"], workdir, timeout=120)
    assert bad.returncode == EXIT_USER_ERROR
    assert "'X' (U+0058)" in bad.stderr and "Traceback" not in bad.stderr
