"""The model printed: the module tree's parameter counts against `num_params` and formulas of the shapes, the
tied head counted once, for glassbox's variants and a Hugging Face GPT-2, and `make inspect` end to end."""

from __future__ import annotations

import pytest

from glassbox import fileio
from glassbox.analysis.modules import module_tree
from glassbox.model import GPT, GPTConfig, swiglu_hidden_size
from glassbox.report.modules import render, terminal
from helpers import copy_project, run_stage

CONFIG = dict(vocab_size=50, block_size=16, n_layer=3, n_head=2, n_embd=24)


def nodes(node):
    yield node
    for child in node["children"]:
        yield from nodes(child)


@pytest.mark.parametrize(
    "variant",
    [{}, {"pos_encoding": "sinusoidal"}, {"pos_encoding": "rope", "norm": "rmsnorm", "mlp": "swiglu"}, {"bias": True}],
    ids=["gpt2", "sinusoidal", "llama-style", "bias"],
)
def test_the_tree_counts_every_parameter_once_by_kind(variant):
    model = GPT(GPTConfig(**CONFIG, **variant))
    modules = module_tree(model)
    assert modules["total"] == model.num_params() == sum(modules["totals"].values())
    d, n_layer, bias = 24, 3, variant.get("bias", False)
    positions = d * 16 if variant.get("pos_encoding", "learned") == "learned" else 0  # sinusoidal: a buffer
    hidden = swiglu_hidden_size(d) if variant.get("mlp") == "swiglu" else 4 * d
    mlp_matrices = 3 if variant.get("mlp") == "swiglu" else 2
    assert modules["totals"]["embedding"] == 50 * d + positions  # the head is the token embedding
    assert modules["totals"]["attention"] == n_layer * (4 * d * d + (4 * d if bias else 0))
    assert modules["totals"]["mlp"] == n_layer * (mlp_matrices * d * hidden + ((hidden + d) if bias else 0))
    assert modules["totals"]["norm"] == (2 * n_layer + 1) * d * (2 if bias else 1)
    (head,) = [n for n in nodes(modules["tree"]) if n["name"] == "lm_head"]
    assert head["total"] == 0 and head["params"][0]["tied_to"] == "wte.weight" and head["params"][0]["count"] == 50 * d


def test_the_tree_is_drawn_with_shapes_counts_and_the_tied_head():
    modules = module_tree(GPT(GPTConfig(**CONFIG)))
    text = terminal(modules)
    assert text.splitlines()[0] == f"GPT  {modules['total']:,} parameters"
    assert "└─ weight [50, 24]  tied to wte.weight (counted there)" in text
    assert "c_attn: Linear  1,728\n│  │  │  │  └─ weight [72, 24]  1,728" in text  # q, k and v: 3 · n_embd rows
    report = render(modules, "Modules")
    assert (
        report.startswith("## Modules\n\n```\nGPT")
        and f"| all (a tied head counted once) | {modules['total']:,} |" in report
    )


def test_a_hugging_face_gpt2_tree_matches_its_parameter_count():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=24, n_layer=2, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    modules = module_tree(model)
    assert modules["total"] == sum(p.numel() for p in model.parameters()) == sum(modules["totals"].values())
    assert modules["totals"]["embedding"] == 50 * 24 + 16 * 24 and modules["totals"]["head"] == 0
    assert modules["totals"]["attention"] == 2 * (4 * 24 * 24 + 4 * 24)  # Conv1D with biases
    (head,) = [n for n in nodes(modules["tree"]) if n["name"] == "lm_head"]
    assert head["params"][0]["tied_to"] == "transformer.wte.weight"


@pytest.mark.slow
def test_make_inspect_prints_the_tree_and_writes_its_report(tiny_project, tmp_path):
    root = copy_project(tiny_project, tmp_path / "project")
    done = run_stage("inspect_model", ["experiment=tiny", "step=0"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    out = (root / "outputs" / "tiny" / "latest").resolve() / "inspect" / "step-0"
    modules = fileio.read_json(out / "modules.json")
    assert f"GPT  {modules['total']:,} parameters" in done.stdout and "parameters by kind:" in done.stdout
    assert modules["total"] == fileio.read_json(root / "outputs" / "tiny" / "latest" / "run.json")["n_params"]
    assert "tied to wte.weight" in (out / "report.md").read_text(encoding="utf-8")
