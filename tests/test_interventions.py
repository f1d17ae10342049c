"""Interventions: the one mechanism in the model (edits at hook points, also under the KV cache), the
steering / patching / ablation experiments on models whose answer is known, their bad inputs, and the
three stages end to end on the tiny experiment."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from glassbox import fileio
from glassbox import metric_keys as keys
from glassbox.analysis.ablation import AblationSpec, head_ablation
from glassbox.analysis.patching import PatchSpec, patching
from glassbox.analysis.steering import SteeringSpec, steering
from glassbox.analysis.suites import Prompt
from glassbox.config import validate
from glassbox.edits import add, set_to, zero
from glassbox.errors import GlassboxError
from glassbox.generation import generate, new_kv_cache
from glassbox.model import GPT, GPTConfig
from glassbox.probes.interventions import random_directions
from glassbox.run.layout import INTERVENTIONS_DIR
from glassbox.run.tracking import JsonlFile
from glassbox.text.vocab import Vocab
from helpers import copy_project, find_corpus, run_stage, wandb_records

SMALL = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16)


def small_model(seed: int = 0, **changes) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**SMALL.__dict__, **changes})).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(SMALL.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the mechanism


@torch.no_grad()
def test_adding_a_zero_vector_changes_nothing():
    model, idx = small_model(), tokens(3, 7)
    plain, _ = model(idx)
    for name in (
        "embed",
        "blocks.0.resid_pre",
        "blocks.1.attn_out",
        "blocks.1.resid_mid",
        "blocks.0.mlp_out",
        "blocks.1.resid_post",
    ):
        edited, _ = model(idx, interventions={name: add(torch.zeros(SMALL.n_embd))})
        assert torch.equal(edited, plain), name


@torch.no_grad()
@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_replacing_any_activation_with_itself_changes_nothing(pos_encoding):
    model, idx = small_model(pos_encoding=pos_encoding), tokens(2, 9)
    logits, cache = model.run_with_cache(idx)
    assert list(cache) == model.hook_points()
    for name in model.hook_points():
        edited, _ = model(idx, interventions={name: set_to(cache[name])})
        assert torch.allclose(edited, logits, atol=1e-5), name


@torch.no_grad()
def test_an_intervention_changes_what_follows_it_and_the_cache_records_the_edit():
    model, idx = small_model(), tokens(1, 6)
    plain, before = model.run_with_cache(idx)
    cache: dict = {}
    edited, _ = model(idx, cache=cache, interventions={"blocks.0.resid_post": zero(positions=[2])})
    assert torch.all(cache["blocks.0.resid_post"][0, 2] == 0)
    assert torch.equal(cache["blocks.0.resid_mid"], before["blocks.0.resid_mid"])  # upstream: untouched
    assert torch.allclose(edited[0, :2], plain[0, :2], atol=1e-6)  # causal: earlier positions cannot see it
    assert not torch.allclose(edited[0, 2:], plain[0, 2:], atol=1e-3)


def test_edits_touch_only_the_chosen_positions_and_heads():
    x = torch.randn(2, 5, 3, 4)  # [B, T, H, hd], like attn.head_out
    zeroed = zero(positions=[-1], heads=[1])(x)
    assert torch.all(zeroed[:, 4, 1] == 0)
    changed = torch.zeros(2, 5, 3, dtype=torch.bool)
    changed[:, 4, 1] = True
    assert torch.equal(zeroed[~changed], x[~changed])
    mean = x.mean(dim=(0, 1))  # [H, hd]
    ablated = set_to(mean, heads=[2])(x)
    assert torch.equal(ablated[:, :, 2], mean[2].expand(2, 5, 4)) and torch.equal(ablated[:, :, :2], x[:, :, :2])
    shifted = add(torch.ones(4), positions=[0, 2])(x[:, :, 0])
    assert torch.allclose(shifted - x[:, :, 0], torch.tensor([1.0, 0, 1, 0, 0])[None, :, None].expand(2, 5, 4))


def test_an_unknown_hook_point_is_refused_by_name():
    model = small_model()
    with pytest.raises(ValueError, match="'blocks.7.resid_post'"):
        model(tokens(1, 3), interventions={"blocks.7.resid_post": zero()})
    with pytest.raises(ValueError, match="'block.0.mlp_out'"):
        generate(model, tokens(1, 3), 2, interventions={"block.0.mlp_out": zero()})


@torch.no_grad()
@pytest.mark.parametrize(
    "interventions",
    [
        {"blocks.0.resid_post": add(torch.linspace(-3, 3, 16))},
        {"blocks.1.attn.head_out": zero(heads=[0]), "blocks.0.mlp_out": zero()},
        {"blocks.1.attn.pattern": lambda p: p.roll(1, dims=1)},  # heads swap patterns: the explicit attention path
    ],
    ids=["steer", "ablate", "pattern"],
)
def test_cached_and_uncached_generation_agree_under_an_intervention(interventions):
    model, prompt = small_model(), tokens(2, 4)
    for param in model.parameters():
        param.mul_(5)  # sharper attention and predictions than at initialisation, like a trained model's
    cached = generate(model, prompt, 8, temperature=0.0, interventions=interventions)
    assert torch.equal(
        cached, generate(model, prompt, 8, temperature=0.0, use_cache=False, interventions=interventions)
    )
    full, _ = model(cached, interventions=interventions)
    assert not torch.allclose(full, model(cached)[0], atol=1e-3)  # and the intervention did something
    kv_cache = new_kv_cache(model)
    chunks = [
        model(cached[:, a:b], kv_cache=kv_cache, interventions=interventions)[0] for a, b in ((0, 4), (4, 5), (5, 12))
    ]
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-5)


# ---------------------------------------------------------------- steering on a model whose answer is known

PLANTED_ITOS = list("abPNQT")
PLANTED = Vocab(itos=PLANTED_ITOS, counts=[1] * len(PLANTED_ITOS))


def planted_model() -> GPT:
    """One block that adds nothing, so each position's hidden state is its token's embedding.

    The embeddings are unit directions u_k with zero mean (LayerNorm keeps them as they are, up to
    scale): P = u1 + 2·u0 and N = u1 - 2·u0 differ by 4·u0, and T's embedding, which the tied lm_head
    reads out, is 5·u0. So the P-minus-N direction is exactly the direction that says T.
    """
    model = small_model(n_layer=1, n_head=1, vocab_size=len(PLANTED_ITOS))
    d = model.config.n_embd
    u = torch.zeros(d // 2, d)
    for k in range(d // 2):
        u[k, 2 * k], u[k, 2 * k + 1] = 2**-0.5, -(2**-0.5)
    rows = {"a": 3 * u[3], "b": 3 * u[4], "P": u[1] + 2 * u[0], "N": u[1] - 2 * u[0], "Q": 3 * u[2], "T": 5 * u[0]}
    with torch.no_grad():
        model.wte.weight.copy_(torch.stack([rows[c] for c in PLANTED_ITOS]))
        model.wpe.weight.zero_()
        model.blocks[0].attn.c_proj.weight.zero_()
        model.blocks[0].mlp.c_proj.weight.zero_()
    return model


def planted_prompts(*texts: str) -> list[Prompt]:
    return [Prompt(text, PLANTED.encode(text)) for text in texts]


def planted_spec(**changes) -> SteeringSpec:
    spec = dict(
        positive=planted_prompts("aP", "bP"),
        negative=planted_prompts("aN", "bN"),
        held_out=planted_prompts("aQ", "bQ"),
        targets=["T"],
        target_ids=[PLANTED.stoi["T"]],
        point="resid_post",
        layers=[0],
        alphas=[-1.0, -0.5, 0.5, 1.0],
        n_random=8,
        seed=0,
        gen_tokens=3,
        temperature=0.0,
        z_min=2.0,
    )
    return SteeringSpec(**{**spec, **changes})


def test_a_planted_direction_steers_the_model_toward_its_target():
    result = steering(planted_model(), planted_spec(), PLANTED_ITOS)
    (layer,) = result["layers"]
    assert layer["norm"] == pytest.approx(4.0, abs=1e-5)  # |P - N| = |4·u0|
    assert max(result["base"]["p_targets"]) < 0.01  # unsteered, after Q the model says Q, not T
    dp = {row["alpha"]: row["dp"] for row in layer["alphas"]}
    assert dp[-1.0] <= dp[-0.5] <= 0 < dp[0.5] < dp[1.0]
    assert dp[1.0] > 0.9  # α = 1 makes T almost certain
    best = result["best"]
    assert (best["layer"], best["alpha"]) == (0, 1.0) and best["exceeds"] and best["z"] > 2
    assert best["dp"] > best["random_dp_mean"] + 2 * best["random_dp_sd"]
    texts = dict(result["continuations"][0]["texts"])
    assert sorted(texts) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert texts[1.0].startswith("T") and not texts[0.0].startswith("T") and not texts[-1.0].startswith("T")
    assert result["scalars"][keys.steer("L0", 1.0, "dp")] == dp[1.0]


def test_the_random_control_uses_directions_of_the_steering_vectors_norm():
    direction = torch.tensor([3.0, -4.0, 0.0, 12.0])
    randoms = random_directions(direction, 16, torch.Generator().manual_seed(0))
    assert torch.allclose(randoms.norm(dim=-1), torch.full((16,), 13.0))
    assert torch.linalg.matrix_rank(randoms) == 4  # they point in different directions
    assert torch.equal(randoms, random_directions(direction, 16, torch.Generator().manual_seed(0)))  # seeded
    result = steering(planted_model(), planted_spec(), PLANTED_ITOS)
    for row in result["layers"][0]["alphas"]:
        assert row["random"]["norm"] == pytest.approx(result["layers"][0]["norm"], rel=1e-5)


# ---------------------------------------------------------------- patching


def small_vocab() -> Vocab:
    itos = list("abcdefghijk")
    return Vocab(itos=itos, counts=[1] * len(itos))


def test_patching_the_targets_own_state_changes_nothing():
    vocab = small_vocab()
    prompt = Prompt("abcd", vocab.encode("abcd"))
    result = patching(small_model(), PatchSpec(prompt, prompt, "resid_post", [0, 1], -1), vocab.itos)
    for row in result["layers"]:
        assert row["p_char"] == pytest.approx(result["p_target"], abs=1e-6)
        assert row["kl"] == pytest.approx(0.0, abs=1e-6) and row["moved"] is None
    assert result["scalars"] == {}


def test_patching_the_last_position_of_a_one_layer_model_gives_the_sources_prediction():
    vocab, model = small_vocab(), small_model(n_layer=1)
    with torch.no_grad():
        model.wte.weight.mul_(20)  # sharper predictions, so source and target disagree clearly
    source, target = Prompt("abc", vocab.encode("abc")), Prompt("hij", vocab.encode("hij"))
    result = patching(model, PatchSpec(source, target, "resid_post", [0], -1), vocab.itos)
    (row,) = result["layers"]
    assert abs(result["p_source"] - result["p_target"]) > 0.1
    assert row["p_char"] == pytest.approx(result["p_source"], abs=1e-5) and row["moved"] == pytest.approx(1.0, abs=1e-4)
    assert [c for c, _ in row["top"]] == [c for c, _ in result["source_top"]]  # the whole distribution is the source's
    assert [p for _, p in row["top"]] == pytest.approx([p for _, p in result["source_top"]], abs=1e-5)
    assert result["scalars"] == {keys.patch_moved("L0"): row["moved"]}


# ---------------------------------------------------------------- head ablation


@pytest.fixture(scope="module")
def copy_model() -> tuple[GPT, torch.Tensor, torch.Tensor]:
    """A one-block, two-head model trained to repeat a 4-token sequence: the second half is only
    predictable by attending four positions back, so some head must do it. Returns the model and
    held-out sequences (inputs, targets)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=32))
    optimizer = model.configure_optimizer(0.0, 2e-2, (0.9, 0.99), "cpu")
    generator = torch.Generator().manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        half = torch.randint(8, (n, 4), generator=generator)
        sequence = torch.cat([half, half], dim=1)
        return sequence[:, :-1], sequence[:, 1:]

    for _ in range(100):
        _, loss = model(*batch(64))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), *batch(128)


@pytest.mark.parametrize("mode", ["mean", "zero"])
def test_ablating_the_head_a_model_relies_on_raises_the_loss(copy_model, mode):
    model, inputs, targets = copy_model
    vocab = Vocab(itos=list("abcdefgh"), counts=[1] * 8)
    prompt = Prompt("abcdabc", vocab.encode("abcdabc"))
    result = head_ablation(model, AblationSpec(mode, [prompt], inputs, targets), vocab.itos)
    assert result["base_loss"] < 1.2  # learned: 3 of 7 positions are a guess among 8 (ln 8 · 3/7 = 0.89)
    assert result["prompts"][0]["char"] == "d" and result["prompts"][0]["p"] > 0.5
    worst = next(h for h in result["heads"] if [h["layer"], h["head"]] == result["ranked"][0])
    assert worst["dloss"] > 0.5 and worst["loss"] == pytest.approx(result["base_loss"] + worst["dloss"])
    assert worst["dp"] < -0.2  # without it the model no longer knows that d comes next
    assert sorted(result["scalars"]) == [keys.ablation_dloss("L0", h) for h in (0, 1)]


# ---------------------------------------------------------------- bad input, in process


@pytest.fixture
def shakespeare_vocab() -> Vocab:
    return Vocab.from_text(find_corpus("tinyshakespeare.txt").read_text(encoding="utf-8"))


MODEL_ARGS = {"block_size": 32, "n_layer": 2}


@pytest.mark.parametrize(
    "override, message",
    [
        ("point=resid_foo", "point='resid_foo': not a hook point"),
        ("layer=2", "layer=2 does not exist: the model has 2 blocks"),
        ("layer=[0,x]", "give all, a block index or a list"),
        ("alphas=[1,a]", "every strength α must be a number"),
        ("alphas=[]", "every strength α must be a number"),
        ("corpus.steering.positive=[]", "corpus.steering.positive is empty"),
        ("corpus.steering.negative=['']", "corpus.steering.negative holds an empty prompt"),
        ("corpus.steering.held_out=[ROMEO,'悟空道']", "'悟' (U+609F)"),
        ("corpus.steering.targets=[ab]", "single characters"),
        ("n_random=1", "n_random=1"),
    ],
    ids=["point", "layer", "layer-type", "alpha", "no-alpha", "empty-set", "empty-prompt", "oov", "target", "random"],
)
def test_bad_steering_input_says_what_was_wrong(make_cfg, shakespeare_vocab, override, message):
    cfg = make_cfg("steer", ["experiment=tiny", override])
    with pytest.raises(GlassboxError, match=re.escape(message)):
        SteeringSpec.from_config(validate(cfg, "steer"), shakespeare_vocab, MODEL_ARGS)


@pytest.mark.parametrize(
    "override, message",
    [
        ("position=5", "position=5: give a position both prompts have"),
        ("target=''", "target holds an empty prompt"),
        ("source=Zounds%", "'%' (U+0025)"),
    ],
)
def test_bad_patching_input_says_what_was_wrong(make_cfg, shakespeare_vocab, override, message):
    cfg = make_cfg("patch", ["experiment=tiny", "target=abc", override])
    with pytest.raises(GlassboxError, match=re.escape(message)):
        PatchSpec.from_config(validate(cfg, "patch"), shakespeare_vocab, MODEL_ARGS)


# ---------------------------------------------------------------- the stages on the tiny experiment


@pytest.fixture(scope="module")
def tiny_project(tiny_project, tmp_path_factory) -> Path:
    """A copy of the session's trained tiny project (conftest.py): the stages here write into its run."""
    return copy_project(tiny_project, tmp_path_factory.mktemp("tiny"))


def interventions_of(root: Path, kind: str) -> list[Path]:
    folder = (root / "outputs" / "tiny" / "latest").resolve() / INTERVENTIONS_DIR / kind
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.e2e
def test_steer_writes_its_report_metrics_and_wandb_tables(tiny_project):
    done = run_stage("steer", ["experiment=tiny", "alphas=[-2,2]", "n_random=4", "gen_tokens=5"], tiny_project)
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = interventions_of(tiny_project, "steer")
    assert "exceeds chance" in done.stdout and str(out / "report.md") in done.stdout
    results = fileio.read_json(out / "results.json")
    (step,) = results["steps"]
    assert step["step"] == 64 and [layer["layer"] for layer in step["layers"]] == [0, 1]
    assert results["settings"]["targets"] == [":"] and len(step["continuations"]) == 6
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Continuations" in report and "“\\nBRUTUS”" in report
    (row,) = JsonlFile(out / "metrics.jsonl").read()
    assert row["step"] == 64 and row[keys.steer("L1", 2.0, "dp")] == step["layers"][1]["alphas"][1]["dp"]
    records = wandb_records(out)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["job_type"] == "steer" and run["run_group"] == "tiny"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    tables = {k.split(".")[0]: item for item in history for k, v in item.items() if v == "table-file"}
    assert sorted(tables) == ["tables/steer", "tables/steer_continuations"]
    assert tables["tables/steer"]["tables/steer.nrows"] == 4  # 2 layers x 2 strengths
    assert [item[keys.steer("L0", -2.0, "z")] for item in history if keys.steer("L0", -2.0, "z") in item] == [
        step["layers"][0]["alphas"][0]["z"]
    ]


@pytest.mark.e2e
def test_patch_runs_over_every_snapshot_of_the_run(tiny_project):
    done = run_stage(
        "patch",
        ["experiment=tiny", "step=all", "source=KING", "target=the king", "layer=[1]", "wandb.mode=disabled"],
        tiny_project,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = interventions_of(tiny_project, "patch")
    results = fileio.read_json(out / "results.json")
    snapshots = sorted(
        int(p.stem.split("_")[1]) for p in (tiny_project / "outputs/tiny/latest/checkpoints").glob("step_???????.pt")
    )
    assert [s["step"] for s in results["steps"]] == snapshots
    assert all([row["layer"] for row in s["layers"]] == [1] for s in results["steps"])
    assert "Over training" in (out / "report.md").read_text(encoding="utf-8")
    assert [row["step"] for row in JsonlFile(out / "metrics.jsonl").read()] == snapshots


@pytest.mark.e2e
def test_ablate_ranks_every_head(tiny_project):
    done = run_stage("ablate", ["experiment=tiny", "mode=zero", "wandb.mode=disabled"], tiny_project)
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = interventions_of(tiny_project, "ablate")
    (step,) = fileio.read_json(out / "results.json")["steps"]
    assert sorted(map(tuple, step["ranked"])) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert math.isfinite(step["base_loss"]) and "Head ablation (zero)" in (out / "report.md").read_text()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "stage, override, message",
    [
        (
            "patch",
            "source=悟空道",
            "source: prompt '悟空道': 3 character(s) are not in the vocabulary",
        ),  # quoted for Hydra
        ("ablate", "mode=half", "mode='half': Input should be 'mean' or 'zero'"),
    ],
)
def test_a_bad_command_line_fails_before_writing_anything(tiny_project, stage, override, message):
    before = interventions_of(tiny_project, stage)
    done = run_stage(stage, ["experiment=tiny", override, "wandb.mode=disabled"], tiny_project)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert interventions_of(tiny_project, stage) == before
