"""Patch Scope: a state written back where it came from reproduces the model's own prediction, the batched
Precision@1 against one forward pass per source, the identity template, the shuffled chance, bad input,
and the stage end to end on the tiny experiment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from glassbox import fileio, hooks
from glassbox import metric_keys as keys
from glassbox.analysis.scoping import (
    ScopeSpec,
    ScopeTarget,
    against_shuffles,
    continue_patched,
    identity_template,
    patch_scope,
)
from glassbox.analysis.suites import Prompt
from glassbox.config import validate
from glassbox.config.stages import Identity
from glassbox.edits import set_to
from glassbox.errors import GlassboxError
from glassbox.generation import generate
from glassbox.model import GPT, GPTConfig
from glassbox.run.layout import INTERVENTIONS_DIR
from glassbox.run.tracking import JsonlFile
from glassbox.text.vocab import Vocab
from helpers import copy_project, run_stage, wandb_records

SMALL = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)


def small_model(pos_encoding: str = "learned") -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**SMALL.__dict__, "pos_encoding": pos_encoding})).eval()
    with torch.no_grad():
        model.wte.weight.mul_(20)  # sharp predictions, so that a wrong state shows
    return model


def windows(n: int, length: int) -> torch.Tensor:
    return torch.randint(SMALL.vocab_size, (n, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
@torch.no_grad()
def test_a_source_patched_into_itself_at_its_own_layer_and_position_reproduces_its_prediction(pos_encoding):
    model, (source,) = small_model(pos_encoding), windows(1, 10).tolist()
    logits, cache = model.run_with_cache(torch.tensor([source]))
    hits = []
    for layer in range(SMALL.n_layer):
        hook = hooks.act_name("resid_post", layer)
        for i in range(len(source)):
            target = ScopeTarget("self", Prompt("", source[: i + 1]), i)
            continued = continue_patched(model, cache[hook][0, i : i + 1], target, hook, 3)
            hits.append(continued[0, 0].item() == logits[0, i].argmax().item())
            unpatched = generate(model, torch.tensor([source[: i + 1]]), 3, 0.0)[0, i + 1 :]
            assert continued[0].tolist() == unpatched.tolist()  # and the whole continuation is the source's
    assert sum(hits) / len(hits) == 1.0  # Precision@1


def spec(**changes) -> ScopeSpec:
    targets = [
        ScopeTarget("neutral", Prompt("", [3]), 0),
        ScopeTarget("identity", Prompt("", [1, 1, 4, 2, 2, 4, 7]), 6),
    ]
    settings = dict(
        windows=windows(3, 8),
        prompts=[Prompt("", [1, 2, 3]), Prompt("", [5])],
        targets=targets,
        point="resid_post",
        layers=[0, 1],
        target_layer=None,
        gen_tokens=4,
        n_shuffles=50,
        seed=0,
        z_min=3.0,
    )
    return ScopeSpec(**{**settings, **changes})


@torch.no_grad()
def test_precision_at_1_is_one_forward_pass_per_source_scored_against_the_sources_own_prediction():
    model, scope = small_model(), spec()
    result = patch_scope(model, scope, list("abcdefghijk"))
    logits, cache = model.run_with_cache(scope.windows)
    own = logits.argmax(-1).flatten()
    for row in result["layers"]:
        target = next(t for t in scope.targets if t.name == row["target"])
        hook = hooks.act_name("resid_post", row["layer"])
        patched = [  # the reference: each source on its own, through the plain forward pass
            model(torch.tensor([target.prompt.ids]), interventions={hook: set_to(state, [target.position])})[0][0, -1]
            for state in cache[hook].flatten(0, 1)
        ]
        assert row["p1"] == pytest.approx((torch.stack(patched).argmax(-1) == own).float().mean().item())
        assert 0 <= row["chance"] < 1 and row["exceeds"] == (row["z"] >= 3.0)
        if row["layer"] == 1:  # the last block's output meets only the final norm and unembedding
            assert row["p1"] == 1.0
    assert [lens["p1"] for lens in result["lens"]][-1] == 1.0
    assert result["scalars"][keys.scope("p1", "L0", "identity")] == result["layers"][1]["p1"]
    assert sorted(result["scalars"]) == sorted(
        [keys.scope_lens(f"L{i}") for i in (0, 1)]
        + [keys.scope(stat, f"L{i}", t) for i in (0, 1) for t in ("neutral", "identity") for stat in ("p1", "z")]
    )
    assert len(result["continuations"]) == 2 * 2 * 2 and all(len(c["text"]) == 4 for c in result["continuations"])


def test_chance_is_the_agreement_with_shuffled_sources():
    same = torch.zeros(40, dtype=torch.long)
    assert against_shuffles(same, same, 20, 0) == (1.0, 0.0)  # one character everywhere agrees however shuffled
    mean, sd = against_shuffles(torch.arange(40), torch.arange(40), 400, 0)
    assert mean == pytest.approx(1 / 40, abs=0.006) and sd > 0  # a shuffle keeps one source in place on average


def test_the_identity_template_uses_the_most_frequent_letters():
    vocab = Vocab(itos=list("，。道了不一那\n"), counts=[90, 80, 50, 40, 30, 20, 10, 70])
    text, position = identity_template(Identity(examples=3, separator="", placeholder=None), vocab)
    assert (text, position) == ("道道\n了了\n不不\n一", 9)
    text, position = identity_template(Identity(examples=2, separator=" ", placeholder="那"), vocab)
    assert (text, position) == ("道 道\n了 了\n那 ", 8)  # the next character is read after the separator
    with pytest.raises(GlassboxError, match="only 5 letters"):
        identity_template(Identity(examples=5, separator="", placeholder=None), vocab)


@pytest.mark.parametrize(
    "override, message",
    [
        ("targets=[neutral,copy]", "Input should be 'neutral' or 'identity'"),
        ("layer=[0,x]", "give all, a block index or a list"),
        ("n_shuffles=1", "n_shuffles"),
        ("gen_tokens=0", "gen_tokens"),
    ],
)
def test_a_bad_setting_is_refused_by_the_schema(make_cfg, override, message):
    with pytest.raises(GlassboxError, match=re.escape(message)):
        validate(make_cfg("scope", ["experiment=xiyouji", override]), "scope")


def test_the_xiyouji_config_takes_its_identity_template_from_the_corpus(make_cfg):
    settings = validate(make_cfg("scope", ["experiment=xiyouji"]), "scope")
    assert settings.identity == Identity(examples=4, separator="", placeholder=None) and settings.neutral == "\n"


# ---------------------------------------------------------------- the stage on the tiny experiment


@pytest.fixture(scope="module")
def tiny_project(tiny_project, tmp_path_factory) -> Path:
    """A copy of the session's trained tiny project (conftest.py): the stage writes into its run."""
    return copy_project(tiny_project, tmp_path_factory.mktemp("tiny"))


def scope_runs(root: Path) -> list[Path]:
    folder = (root / "outputs" / "tiny" / "latest").resolve() / INTERVENTIONS_DIR / "scope"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_scope_runs_over_every_snapshot_and_writes_its_outputs(tiny_project):
    args = ["experiment=tiny", "step=all", "prompts=[ROMEO:,the king]", "n_sequences=2", "length=8", "gen_tokens=3"]
    done = run_stage("scope", args, tiny_project)
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = scope_runs(tiny_project)
    results = fileio.read_json(out / "results.json")
    snapshots = sorted(
        int(p.stem.split("_")[1]) for p in (tiny_project / "outputs/tiny/latest/checkpoints").glob("step_???????.pt")
    )
    assert [s["step"] for s in results["steps"]] == snapshots
    assert [t["text"] for t in results["settings"]["targets"]] == ["\n", "e e\nt t\no o\na a\n? "]
    rows = JsonlFile(out / "metrics.jsonl").read()
    assert [row["step"] for row in rows] == snapshots
    assert rows[-1][keys.scope("p1", "L1", "identity")] == 1.0  # the last block: nothing left to change it
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Over training" in report and "“ROMEO:”" in report and "Patch Scope" in done.stdout
    records = wandb_records(out)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    tables = {k.split(".")[0] for item in history for k, v in item.items() if v == "table-file"}
    assert run["job_type"] == "scope" and tables == {"tables/scope", "tables/scope_continuations"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        ("layer=2", "layer=2 does not exist: the model has 2 blocks"),
        ("target_layer=5", "layer=5 does not exist"),
        ("prompts=['']", "prompts holds an empty prompt"),
        ("neutral=''", "neutral holds an empty prompt"),
    ],
)
def test_bad_input_exits_2_before_writing_anything(tiny_project, override, message):
    before = scope_runs(tiny_project)
    done = run_stage("scope", ["experiment=tiny", override, "wandb.mode=disabled"], tiny_project)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert scope_runs(tiny_project) == before
