"""Interop: a real tiny run exported and loaded by transformers (same logits, same greedy text, same
character ids), the nanoGPT layout, inspect-hf on the export (the native suites' numbers) and on a
tiny Llama, an exported checkpoint series (the run's own emergence metrics), and load_run.
Nothing is downloaded: every model is trained or built here."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import glassbox
from glassbox.analysis import suites
from glassbox.config import validate
from glassbox.errors import EXIT_USER_ERROR, GlassboxError
from glassbox.export import export
from glassbox.generation import generate
from glassbox.interop.export import (
    char_tokenizer,
    export_class,
    export_dir,
    export_snapshot,
    gpt2_weights,
    rotate_half_order,
)
from glassbox.interop.hf import load_causal_lm
from glassbox.interop.hf_suites import inspect_hf
from glassbox.model import GPT, GPTConfig
from glassbox.prepare import prepare
from glassbox.run.layout import list_snapshots, snapshot_path
from glassbox.run.snapshots import Snapshot, load_snapshot, model_args, save_snapshot
from glassbox.run.tracking import JsonlFile
from glassbox.text.corpus import decode, normalize
from glassbox.text.tokens import TokenData
from glassbox.text.vocab import Vocab
from glassbox.train import train
from helpers import copy_project, find_corpus, project_with_corpus, run_stage, run_stages, stage_config

TOL = 1e-5


@pytest.fixture(scope="module")
def tiny(tiny_project, tmp_path_factory) -> dict:
    """A copy of the session's trained tiny project (conftest.py) with every snapshot exported."""
    root = copy_project(tiny_project, tmp_path_factory.mktemp("project"))
    run_stages(root, ["export"], ["experiment=tiny", "step=all"])
    run_dir = (root / "outputs" / "tiny" / "latest").resolve()
    steps = [step for step, _ in list_snapshots(run_dir)]
    return {"root": root, "run_dir": run_dir, "steps": steps, "last": export_dir(run_dir, steps[-1])}


def config(root: Path, config_name: str, *overrides: str):
    return stage_config(config_name, root, *overrides)


def snapshot_of(tiny: dict, step: int) -> dict:
    return load_snapshot(dict(list_snapshots(tiny["run_dir"]))[step])


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def load_export(folder: Path, model_class=transformers.GPT2LMHeadModel):
    """(model, loading info, the warnings transformers logged while loading) of an export as model_class;
    its loggers do not propagate to pytest's caplog, so a handler listens on them directly."""
    handler, logger = Records(), logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        model, info = model_class.from_pretrained(folder, output_loading_info=True)
    finally:
        logger.removeHandler(handler)
    return model.eval(), info, [r.getMessage() for r in handler.records if r.levelno >= logging.WARNING]


# ---------------------------------------------------------------- export → transformers


@pytest.mark.slow
def test_export_loads_without_warnings_and_gives_glassbox_logits(tiny):
    model, info, warnings = load_export(tiny["last"])
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert warnings == []
    assert model.dtype == torch.float32
    assert model.lm_head.weight is model.transformer.wte.weight  # tied, as in glassbox

    glassbox_model = snapshot_of(tiny, tiny["steps"][-1]).model()
    block = glassbox_model.config.block_size
    idx = torch.randint(glassbox_model.config.vocab_size, (4, block), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, _ = glassbox_model(idx)
        got = model(idx).logits
    largest = (expected - got).abs().max().item()
    print(f"largest logit difference glassbox vs transformers: {largest:.3g}")
    assert largest < TOL

    prompt = idx[:1, :5]
    greedy = model.generate(prompt, max_new_tokens=block - 5, do_sample=False)
    assert greedy.tolist() == generate(glassbox_model, prompt, block - 5, top_k=1).tolist()


@pytest.mark.slow
def test_the_warning_check_would_see_a_missing_weight(tiny, tmp_path):
    """The no-warnings assertion above means something: a broken file does warn."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny["last"] / name).read_bytes())
    weights = load_file(tiny["last"] / "model.safetensors")
    del weights["transformer.h.0.ln_1.bias"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    _, info, warnings = load_export(broken)
    assert info["missing_keys"] == {"transformer.h.0.ln_1.bias"}
    assert any("MISSING" in w for w in warnings)


@pytest.mark.slow
def test_tokenizer_gives_glassbox_ids_for_shakespeare_and_refuses_unknown_characters(tiny):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny["last"])
    vocab = Vocab.load(tiny["last"] / "vocab.json")
    text = normalize(decode(find_corpus("tinyshakespeare.txt").read_bytes())[0])[:3000]
    assert "\n\n" in text and " " in text
    ids = tokenizer(text)["input_ids"]
    assert ids == vocab.encode(text)
    assert tokenizer.decode(ids) == text
    with pytest.raises(Exception, match="Missing \\[UNK\\]"):
        tokenizer("héllo")


def test_tokenizer_gives_glassbox_ids_for_xiyouji(tmp_path):
    text = normalize(decode(find_corpus("xiyouji.txt").read_bytes())[0])[:5000]
    vocab = Vocab.from_text(text)
    assert any(ord(c) > 0x4E00 for c in text) and "\n" in text
    tokenizer_json, tokenizer_config = char_tokenizer(vocab, block_size=128)
    (tmp_path / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ids = tokenizer(text)["input_ids"]
    assert ids == vocab.encode(text)
    assert tokenizer.decode(ids) == text
    with pytest.raises(Exception, match="Missing \\[UNK\\]"):
        tokenizer("悟空道 🐒")


@pytest.mark.slow
def test_nanogpt_layout_has_nanogpt_names_and_loads_back(tiny):
    weights = load_file(tiny["last"] / "nanogpt.safetensors")
    cfg = json.loads((tiny["last"] / "nanogpt_config.json").read_text())
    n = cfg["n_layer"]
    # The names nanoGPT's GPT.state_dict() has without biases, which TransformerLens' converter reads.
    per_layer = [
        "ln_1.weight",
        "attn.c_attn.weight",
        "attn.c_proj.weight",
        "ln_2.weight",
        "mlp.c_fc.weight",
        "mlp.c_proj.weight",
    ]
    assert set(weights) == {
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.ln_f.weight",
        "lm_head.weight",
        *(f"transformer.h.{i}.{p}" for i in range(n) for p in per_layer),
    }
    assert torch.equal(weights["lm_head.weight"], weights["transformer.wte.weight"])

    # Same modules, same layouts: back under glassbox's names it loads strictly and computes the same.
    model = GPT(GPTConfig(**cfg))
    model.load_state_dict(
        {k.replace("transformer.h.", "blocks.").replace("transformer.", ""): v for k, v in weights.items()}
    )
    original = snapshot_of(tiny, tiny["steps"][-1]).model()
    idx = torch.arange(cfg["block_size"])[None] % cfg["vocab_size"]
    with torch.no_grad():
        assert torch.equal(model.eval()(idx)[0], original(idx)[0])


@pytest.mark.slow
def test_export_writes_a_readme_and_replaces_an_older_export_whole(tiny):
    before = (tiny["last"] / "model.safetensors").read_bytes()
    assert export(config(tiny["root"], "export", "experiment=tiny")) == [tiny["last"]]  # the last step, again
    assert (tiny["last"] / "model.safetensors").read_bytes() == before
    readme = (tiny["last"] / "README.md").read_text()
    for tool in ("GPT2LMHeadModel", "convert_nanogpt_weights", "nanogpt.safetensors", "AutoTokenizer"):
        assert tool in readme
    assert json.loads((tiny["last"] / "glassbox.json").read_text())["step"] == tiny["steps"][-1]
    assert sorted(p.name for p in (tiny["run_dir"] / "export").iterdir()) == sorted(f"step-{s}" for s in tiny["steps"])
    assert not list(tiny["run_dir"].rglob("*.pkl")) and not list((tiny["run_dir"] / "export").rglob("*.bin"))


def test_export_of_a_model_with_biases_keeps_them(tmp_path):
    """bias=true: every bias (and LayerNorm shift) reaches its GPT-2 and nanoGPT place; all made non-zero here."""
    vocab = Vocab.from_text("to be, or not to be: that is the question.")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab.size, block_size=12, n_layer=2, n_head=2, n_embd=16, bias=True)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    snapshot = Snapshot.from_payload(
        tmp_path / "checkpoints" / "step_0000005.pt",
        {
            "step": 5,
            "model": model.state_dict(),
            "model_args": dataclasses.asdict(model.config),
            "vocab_hash": vocab.hash,
            "config": {"name": "synthetic", "corpus": {"name": "hamlet"}},
        },
    )
    folder = export_snapshot(snapshot, vocab, tmp_path / "export")

    hf_model, info, warnings = load_export(folder)
    assert not info["missing_keys"] and not info["unexpected_keys"] and warnings == []
    idx = torch.tensor([vocab.encode("that is the ")])
    with torch.no_grad():
        assert (hf_model(idx).logits - model(idx)[0]).abs().max() < TOL
    nanogpt = load_file(folder / "nanogpt.safetensors")
    assert torch.equal(nanogpt["transformer.h.1.mlp.c_fc.bias"], model.blocks[1].mlp.c_fc.bias)
    assert torch.equal(nanogpt["transformer.ln_f.bias"], model.ln_f.bias)


LLAMA_TEXT = "to be, or not to be: that is the question."


def llama_snapshot(tmp_path: Path, **options) -> tuple[Snapshot, Vocab]:
    """A llama-style glassbox model (rope, rmsnorm, swiglu) with weights moved off their initialisation
    (sharper attention, non-trivial gains, biases if asked), as a snapshot."""
    vocab = Vocab.from_text(LLAMA_TEXT)
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=vocab.size,
        block_size=24,
        n_layer=2,
        n_head=4,
        n_embd=32,
        pos_encoding="rope",
        norm="rmsnorm",
        mlp="swiglu",
        **options,
    )
    model = GPT(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    payload = {
        "step": 7,
        "model": model.state_dict(),
        "model_args": dataclasses.asdict(model.config),
        "vocab_hash": vocab.hash,
        "config": {"name": "synthetic", "corpus": {"name": "hamlet"}},
    }
    return Snapshot.from_payload(tmp_path / "checkpoints" / "step_0000007.pt", payload), vocab


def test_rotate_half_order_pairs_glassbox_rotary_dimensions_as_llama_does():
    rows = torch.arange(2 * 8).float()  # two heads of head size 8
    assert rotate_half_order(rows, 8).tolist() == [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15]
    weight = torch.arange(16 * 3).float().view(16, 3)
    assert torch.equal(rotate_half_order(weight, 8)[:, 1], rotate_half_order(weight[:, 1], 8))


@pytest.mark.parametrize(
    "options", [{}, {"n_kv_head": 2}, {"n_kv_head": 1, "bias": True}], ids=["mha", "gqa", "mqa-bias"]
)
def test_a_llama_style_export_loads_as_llama_and_gives_glassbox_logits(tmp_path, options):
    snapshot, vocab = llama_snapshot(tmp_path, **options)
    folder = export_snapshot(snapshot, vocab, tmp_path / "export")
    assert not (folder / "nanogpt.safetensors").exists()
    assert "LlamaForCausalLM" in (folder / "README.md").read_text()

    hf_model, info, warnings = load_export(folder, transformers.LlamaForCausalLM)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert warnings == []
    assert hf_model.lm_head.weight is hf_model.model.embed_tokens.weight  # tied, as in glassbox
    assert hf_model.config.num_key_value_heads == snapshot.model_args["n_kv_head"]

    model = snapshot.model()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(LLAMA_TEXT[:24], return_tensors="pt").input_ids
    assert ids.tolist() == [vocab.encode(LLAMA_TEXT[:24])]
    idx = torch.cat([ids, torch.randint(vocab.size, (3, 24), generator=torch.Generator().manual_seed(1))])
    with torch.no_grad():
        expected, _ = model(idx)
        got = hf_model(idx).logits
    largest, scale = (expected - got).abs().max().item(), expected.abs().max().item()
    print(
        f"largest logit difference glassbox vs LlamaForCausalLM ({options}): {largest:.3g} of logits up to {scale:.3g}"
    )
    # float32 rounding only: transformers runs q, k and v as three matmuls where glassbox runs one, so sums are
    # taken in another order; on logits this large (a sharp model) that is ~1e-6 of their size.
    assert largest < TOL * max(1.0, scale)
    assert expected.std() > 1  # logits far from uniform: a wrong rotary order or head grouping would show

    prompt = ids[:, :5]
    greedy = hf_model.generate(prompt, max_new_tokens=19, do_sample=False)
    assert greedy.tolist() == generate(model, prompt, 19, top_k=1).tolist()


def test_a_llama_export_with_glassboxs_rotary_order_left_as_is_would_differ(tmp_path, monkeypatch):
    """The logit comparison above can see the rotary convention: skipping the permutation breaks it."""
    snapshot, vocab = llama_snapshot(tmp_path)
    monkeypatch.setattr("glassbox.interop.export.rotate_half_order", lambda rows, head_dim: rows)
    folder = export_snapshot(snapshot, vocab, tmp_path / "export")
    hf_model = transformers.LlamaForCausalLM.from_pretrained(folder).eval()
    idx = torch.tensor([vocab.encode(LLAMA_TEXT[:24])])
    with torch.no_grad():
        assert (hf_model(idx).logits - snapshot.model()(idx)[0]).abs().max() > 1e-2


LLAMA_RUN = [
    "experiment=tiny",
    "train.device=cpu",
    "train.max_iters=32",
    "model.pos_encoding=rope",
    "model.norm=rmsnorm",
    "model.mlp=swiglu",
    "model.n_kv_head=1",
]


@pytest.mark.slow
def test_make_export_of_a_llama_style_run_and_inspect_hf_on_it(tmp_path):
    root = project_with_corpus(tmp_path / "project")
    prepare(config(root, "prepare", *LLAMA_RUN))
    run_dir = train(config(root, "train", *LLAMA_RUN), root / "outputs" / "tiny" / "llama")
    (folder,) = export(config(root, "export", *LLAMA_RUN))
    assert folder == export_dir(run_dir, 32)
    assert json.loads((folder / "config.json").read_text())["num_key_value_heads"] == 1
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf_model).__name__ == "LlamaForCausalLM"
    snapshot = load_snapshot(snapshot_path(run_dir, 32))
    model, vocab = snapshot.model(), snapshot.vocab()
    prompt = find_corpus("tinyshakespeare.txt").read_text(encoding="utf-8")[:32]
    idx = torch.tensor([vocab.encode(prompt)])
    with torch.no_grad():
        largest = (model(idx)[0] - hf_model(idx).logits).abs().max().item()
    print(f"largest logit difference of the trained llama-style run: {largest:.3g}")
    assert largest < TOL
    greedy = hf_model.generate(idx[:, :8], max_new_tokens=24, do_sample=False)
    assert greedy.tolist() == generate(model, idx[:, :8], 24, top_k=1).tolist()

    analysis = inspect_hf(config(root, "inspect_hf", *LLAMA_RUN, f"hf.path={folder}"), tmp_path / "inspect")
    assert analysis["model"]["class"] == "LlamaForCausalLM" and (tmp_path / "inspect" / "report.md").exists()


def test_export_refuses_other_architectures():
    assert export_class({"pos_encoding": "learned", "norm": "layernorm"}) == "GPT2LMHeadModel"
    assert export_class({"pos_encoding": "rope", "norm": "rmsnorm", "mlp": "swiglu"}) == "LlamaForCausalLM"
    with pytest.raises(GlassboxError, match="model.pos_encoding=rope"):
        export_class({"pos_encoding": "rope"})
    with pytest.raises(GlassboxError, match="model.norm=rmsnorm.*model.norm=layernorm"):
        export_class({"norm": "rmsnorm"})
    with pytest.raises(GlassboxError, match="model.mlp=swiglu.*model.mlp=gelu"):
        export_class({"mlp": "swiglu"})
    with pytest.raises(GlassboxError, match=r"model.pos_encoding=sinusoidal.*\(LlamaForCausalLM\)"):
        export_class({"pos_encoding": "sinusoidal", "norm": "rmsnorm", "mlp": "swiglu"})
    with pytest.raises(GlassboxError, match="model.n_kv_head=1, n_head=2.*only the llama-style model"):
        export_class({"n_head": 2, "n_kv_head": 1})
    assert export_class(model_args(GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4)))) == (
        "GPT2LMHeadModel"
    )
    model = GPT(GPTConfig(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=4))
    args = {"n_layer": 1, "bias": False}
    with pytest.raises(GlassboxError, match="unknown"):
        gpt2_weights({**model.state_dict(), "blocks.0.mlp.c_gate.weight": torch.zeros(1)}, args)


@pytest.mark.slow
def test_export_of_a_missing_step_exits_cleanly(tiny):
    done = run_stage("export", ["experiment=tiny", "step=3"], tiny["root"])
    assert done.returncode == EXIT_USER_ERROR
    assert "no snapshot at step 3" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- inspect-hf


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=TOL)


@pytest.mark.slow
def test_inspect_hf_on_the_export_gives_the_native_suites_numbers(tiny, tmp_path):
    step = tiny["steps"][-1]
    cfg = config(tiny["root"], "inspect_hf", "experiment=tiny", f"hf.path={tiny['last']}")
    analysis = inspect_hf(cfg, tmp_path)
    assert (tmp_path / "report.md").exists() and json.loads((tmp_path / "analysis.json").read_text())["model"]
    assert analysis["modules"]["total"] == analysis["model"]["n_params"]  # the tree counts the tied head once
    assert "tied to transformer.wte.weight" in (tmp_path / "report.md").read_text(encoding="utf-8")

    model = snapshot_of(tiny, step).model()
    settings = validate(cfg, "inspect_hf")
    data = TokenData(settings.paths.processed_dir)
    inputs = suites.SuiteInputs.from_config(settings.corpus, settings.analysis, data, model.config.block_size, None)
    native = {name: suites.SUITES[name](model, inputs) for name in ("embeddings", "logit_lens", "context", "attention")}

    for ours, theirs in zip(analysis["neighbours"], native["embeddings"]["neighbours"], strict=True):
        assert ours["char"] == theirs["char"]
        assert [t for t, _ in ours["neighbours"]] == [t for t, _ in theirs["neighbours"]]
        assert all(close(a, b) for (_, a), (_, b) in zip(ours["neighbours"], theirs["neighbours"]))
    for ours, theirs in zip(analysis["logit_lens"], native["logit_lens"]["prompts"], strict=True):
        for a, b in zip(ours["layers"], theirs["layers"], strict=True):
            assert a["layer"] == b["layer"] and [t for t, _ in a["top"]] == [t for t, _ in b["top"]]
            assert all(close(p, q) for (_, p), (_, q) in zip(a["top"], b["top"]))
    for a, b in zip(analysis["context"]["layers"], native["context"]["layers"], strict=True):
        assert a["layer"] == b["layer"] and all(close(a[k], b[k]) for k in ("within", "across", "gap"))
    for a, b in zip(analysis["attention"], native["attention"]["prompts"], strict=True):
        assert torch.allclose(torch.tensor(a["pattern"]), torch.tensor(b["pattern"]), atol=TOL, rtol=0)
    emergence = native["embeddings"]["scalars"]
    assert all(close(value, emergence[key]) for key, value in analysis["emergence"].items())
    assert analysis["counts"].endswith("vocab.json")


@pytest.mark.slow
def test_inspect_hf_on_exported_series_reproduces_the_runs_metrics(tiny, tmp_path):
    cfg = config(tiny["root"], "inspect_hf", "experiment=tiny", f"hf.path={tiny['run_dir'] / 'export'}")
    analysis = inspect_hf(cfg, tmp_path)
    rows = JsonlFile(tmp_path / "metrics.jsonl").read()
    assert [row["step"] for row in rows] == analysis["steps"] == tiny["steps"]
    run_rows = {row["step"]: row for row in JsonlFile(tiny["run_dir"] / "metrics.jsonl").read()}
    for row in rows:
        expected = run_rows[row["step"]]
        keys = [k for k in row if k != "step"]
        assert any(k.startswith("zf/") for k in keys) and any(k.startswith("emb/") for k in keys)
        mismatched = {k: (row[k], expected[k]) for k in keys if not close(row[k], expected[k])}
        assert not mismatched, f"step {row['step']}"
    assert "| 64 |" in (tmp_path / "report.md").read_text()


def tiny_llama(folder: Path) -> None:
    """A randomly initialised 2-layer Llama and a BPE tokenizer trained on a few sentences, saved like a download."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog ran", "the sun and the moon"] * 20
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"]))
    transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)


def llama_config(tmp_path: Path, folder: Path, **probes):
    """inspect_hf's config for the tiny Llama: probes in its tokens, baselines sized to its 100-odd tokens."""
    cfg = config(
        tmp_path,
        "inspect_hf",
        f"hf.path={folder}",
        "analysis.chance.n_pairs=50",
        "analysis.chance.n_permutations=20",
        "analysis.chance.n_bands=2",
        "analysis.chance.top_k_frequent=100",
    )
    cfg.corpus.probes = {
        "groups": {"animals": ["cat", "dog"], "sky": ["sun", "moon"]},
        "pairs": [
            {"id": "cat_dog", "a": "cat", "b": "dog"},
            {"id": "sun_moon", "a": "sun", "b": "moon"},
            {"id": "cat_sun", "a": "cat", "b": "sun"},
        ],
        "prompts": ["the cat sat on the", "catdog"],
        "context": {
            "char": "sat",
            "senses": {"cat": ["the cat sat", "a cat sat"], "dog": ["the dog sat", "a dog sat"]},
        },
        **probes,
    }
    return cfg


def test_inspect_hf_runs_on_a_tiny_llama(tmp_path):
    folder = tmp_path / "tiny-llama"
    tiny_llama(folder)
    cfg = llama_config(tmp_path, folder)
    out = tmp_path / "out"
    analysis = inspect_hf(cfg, out)
    assert analysis["model"]["final_norm"] == "model.norm" and not analysis["model"]["tied_embeddings"]
    assert analysis["counts"] == "uniform"
    assert [layer["layer"] for layer in analysis["logit_lens"][0]["layers"]] == ["embed", "L0", "L1"]
    assert len(analysis["attention"][0]["entropy"]) == 2 and len(analysis["attention"][0]["entropy"][0]) == 4
    tokenized = {t["text"]: t["tokens"] for t in analysis["tokenization"]}
    assert tokenized["catdog"] == ["cat", "dog"]
    report = (out / "report.md").read_text()
    assert "cat · dog" in report and "Logit lens" in report and "No token counts" in report
    assert "| cat–dog | up |" in report and "| L1 | " in report  # pairs by label, layers as in metric keys

    # The hook-point cache is the model's own computation: the last block's residual through
    # model.norm and lm_head gives the logits.
    model = load_causal_lm(folder)
    with torch.no_grad():
        logits, cache = model.run_with_cache(torch.tensor([[3, 5, 7, 9]]))
        assert torch.allclose(model.hf.model.norm(cache["blocks.1.resid_post"]), cache["ln_final"], atol=TOL)
        assert torch.allclose(model.unembed(cache["blocks.1.resid_post"]), logits, atol=TOL)
        assert torch.equal(cache["blocks.1.resid_pre"], cache["blocks.0.resid_post"])


def test_inspect_hf_says_when_a_probe_is_several_tokens(tmp_path):
    folder = tmp_path / "tiny-llama"
    tiny_llama(folder)
    cfg = llama_config(tmp_path, folder, pairs=[{"id": "cat_catdog", "a": "cat", "b": "catdog"}])
    with pytest.raises(GlassboxError, match="'catdog' is 2 tokens .*cat \\| dog"):
        inspect_hf(cfg, tmp_path / "out")


@pytest.mark.slow
def test_inspect_hf_on_a_missing_folder_exits_cleanly(tmp_path):
    done = run_stage("inspect_hf", ["experiment=tiny", f"hf.path={tmp_path / 'nowhere'}"], tmp_path)
    assert done.returncode == EXIT_USER_ERROR
    assert "is not a folder" in done.stderr and "Traceback" not in done.stderr


def damaged_exports(export: Path, to: Path) -> dict[str, tuple[Path, str]]:
    """Copies of a good export, each damaged one way, with what inspect-hf must answer for it."""
    folders = {name: to / name for name in ("no-tokenizer", "other-config", "cut-short")}
    for folder in folders.values():
        shutil.copytree(export, folder)
    for file in folders["no-tokenizer"].glob("tokenizer*"):
        file.unlink()
    config_file = folders["other-config"] / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "n_embd": 64}))
    weights = folders["cut-short"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    shutil.copytree(export, to / "series" / "step_1")
    shutil.copytree(folders["cut-short"], to / "series" / "step_2")
    return {
        "no-tokenizer": (folders["no-tokenizer"], "no-tokenizer has no tokenizer files \\(any of tokenizer.json,"),
        "other-config": (
            folders["other-config"],
            r"other-config/config.json does not match the weights beside it \(transformer.h.0.attn.c_attn.bias is "
            r"\[96\] in the weights, \[192\] by config.json; .* use the config.json saved with these weights",
        ),
        "cut-short": (folders["cut-short"], "cut-short/model.safetensors is damaged or cut short"),
        "series": (to / "series", "series/step_2/model.safetensors is damaged or cut short"),
    }


@pytest.mark.slow
def test_inspect_hf_names_the_file_of_a_damaged_folder_and_leaves_no_output_folder(tiny, tmp_path):
    """Once a transformers or safetensors traceback (exit 1), or a tokenizer error about `vocab` and `merges`."""
    damaged = damaged_exports(tiny["last"], tmp_path)
    for folder, answer in damaged.values():
        with pytest.raises(GlassboxError, match=answer):
            inspect_hf(config(tiny["root"], "inspect_hf", "experiment=tiny", f"hf.path={folder}"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # the command line turns any of them into exit 2 and removes the folder it made: one case shows it
    name, (folder, _) = next(iter(damaged.items()))
    done = run_stage("inspect_hf", ["experiment=tiny", f"hf.path={folder}"], tiny["root"])
    assert done.returncode == EXIT_USER_ERROR and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tiny["root"] / "outputs" / "hf" / name).exists()  # not even an empty outputs/hf/<name>/


# ---------------------------------------------------------------- load_run


@pytest.mark.slow
def test_load_run_reuses_the_stages_readers(tiny):
    run = glassbox.load_run(tiny["root"] / "outputs" / "tiny")  # the experiment's folder: its latest run
    assert run.path == tiny["run_dir"] and run.steps == tiny["steps"]
    assert run.config.name == "tiny" and run.config.model.n_layer == 2
    assert run.vocab.hash == snapshot_of(tiny, 0).vocab_hash

    step = tiny["steps"][-2]
    model = run.model(step)
    assert not model.training
    idx = torch.tensor([run.vocab.encode("ROMEO:")])
    with torch.no_grad():
        assert torch.equal(model(idx)[0], snapshot_of(tiny, step).model()(idx)[0])
        _, cache = model.run_with_cache(idx)
    assert "blocks.1.attn.pattern" in cache

    metrics = run.metrics()
    assert {"step", "loss/val", "cos/a_e"} <= set(metrics.columns)
    assert metrics["step"].tolist() == tiny["steps"]
    with pytest.raises(GlassboxError, match="no snapshot at step 3"):
        run.model(3)


def test_load_run_finds_the_vocabulary_of_a_run_trained_with_relative_paths(tmp_path, monkeypatch):
    """paths.root_dir=. (the Makefile's way) records processed_dir relative to where training ran."""
    vocab = Vocab.from_text("hello world")
    vocab.save(tmp_path / "project" / "data" / "processed" / "hello" / "vocab.json")
    run_dir = tmp_path / "project" / "outputs" / "hello" / "2024-01-01_00-00-00-000000"
    model = GPT(GPTConfig(vocab_size=vocab.size, block_size=4, n_layer=1, n_head=1, n_embd=8))
    config = {"name": "hello", "corpus": {"name": "hello"}, "paths": {"processed_dir": "./data/processed/hello"}}
    save_snapshot(
        snapshot_path(run_dir, 0),
        {
            "step": 0,
            "model": model.state_dict(),
            "vocab_hash": vocab.hash,
            "model_args": dataclasses.asdict(model.config),
            "config": config,
        },
    )
    monkeypatch.chdir(tmp_path)  # not the project: the vocabulary is found from the run's folders
    run = glassbox.load_run(run_dir)
    assert run.vocab == vocab and run.steps == [0] and run.config.paths.processed_dir == "./data/processed/hello"
    with pytest.raises(GlassboxError, match="no snapshots"):
        glassbox.load_run(tmp_path)
