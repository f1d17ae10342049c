"""Head roles and in-context learning (probes/heads.py, probes/mechanisms.py) and their verdicts
(analysis/claims.py): hand-built attention patterns and losses whose scores are known exactly."""

from pathlib import Path

import pytest
import torch

from glassbox import metric_keys as keys
from glassbox.analysis.claims import HELD, NOT_YET, judge_mechanism, mechanisms
from glassbox.analysis.replicates import SeedRun, summarize_replicate
from glassbox.model import GPT, GPTConfig
from glassbox.probes.activations import capture_activations
from glassbox.probes.heads import (
    HEAD_ROLES,
    head_scores,
    repeat_losses,
    repeated_random_tokens,
    role_positions,
    span_mean,
    uniform_chance,
)
from glassbox.probes.mechanisms import MechanismProbe
from glassbox.report.replicate import replicate_markdown
from glassbox.run.tracking import JsonlFile
from helpers import compose_config, run_stages

L = 6  # each copy's length: sequences of 2·L + 1 = 13 tokens
T = 2 * L + 1
HELD_RULE = {"ratio": 3.0, "margin": 0.05, "icl_nats": 0.2, "repeat_nats": 0.5}


def uniform_causal(batch: int, heads: int, seq_len: int) -> torch.Tensor:
    """Every query attends evenly to itself and everything before it."""
    mask = torch.tril(torch.ones(seq_len, seq_len))
    return (mask / mask.sum(-1, keepdim=True)).expand(batch, heads, seq_len, seq_len).clone()


def attending_exactly(role: str, batch: int = 2, heads: int = 3, head: int = 1) -> torch.Tensor:
    """A uniform causal pattern but for `head`, whose scored queries put all their attention on the role's target."""
    pattern = uniform_causal(batch, heads, T)
    queries, targets = role_positions(role, T, L)
    pattern[:, head, queries] = 0.0
    pattern[:, head, queries, targets] = 1.0
    return pattern


@pytest.mark.parametrize("role", HEAD_ROLES)
def test_a_head_attending_exactly_to_the_target_scores_one_and_a_uniform_head_its_chance(role):
    scores, chance = head_scores(attending_exactly(role), role, L)
    assert scores[1].item() == pytest.approx(1.0)
    assert scores[[0, 2]].tolist() == pytest.approx([chance, chance])
    queries, _ = role_positions(role, T, L)
    assert chance == pytest.approx(sum(1 / (t + 1) for t in queries.tolist()) / len(queries))


def test_role_positions_are_the_documented_targets():
    # sequence: x, a b c d e f, a b c d e f (positions 0, 1-6, 7-12)
    assert role_positions("prev", T)[1].tolist() == list(range(0, T - 1))
    assert role_positions("sink", T)[1].tolist() == [0] * (T - 1)
    dup_q, dup_k = role_positions("dup", T, L)
    assert dup_q.tolist() == list(range(7, 13)) and dup_k.tolist() == list(range(1, 7))
    ind_q, ind_k = role_positions("induction", T, L)
    assert ind_q.tolist() == list(range(7, 12)) and ind_k.tolist() == list(range(2, 7))
    with pytest.raises(ValueError, match="2·L\\+1"):
        role_positions("induction", T - 1, L)
    with pytest.raises(ValueError, match="unknown head role"):
        role_positions("copy", T, L)


def test_uniform_chance_is_the_mean_of_one_over_t_plus_one():
    assert uniform_chance(torch.tensor([0, 1, 3])) == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)


def test_repeated_random_tokens_repeat_band_characters_after_one_fixed_first_character():
    counts = torch.tensor([5, 100, 50, 40, 30, 20, 10, 8, 7, 6, 1, 2, 3, 4, 9, 11, 12, 13, 14, 15])
    ranked = torch.argsort(counts, descending=True).tolist()
    tokens = repeated_random_tokens(counts, 8, L, (0.1, 0.6), torch.Generator().manual_seed(3))
    assert tokens.shape == (8, T)
    assert (tokens[:, 0] == ranked[0]).all()  # the most frequent character stands in for a BOS
    assert torch.equal(tokens[:, 1 : L + 1], tokens[:, L + 1 :])
    assert set(tokens[:, 1:].flatten().tolist()) <= set(ranked[2:12])  # ranks [0.1·20, 0.6·20)
    assert all(len(set(row)) == L for row in tokens[:, 1 : L + 1].tolist())  # 10 in the band: no repeats
    again = repeated_random_tokens(counts, 8, L, (0.1, 0.6), torch.Generator().manual_seed(3))
    assert torch.equal(tokens, again)
    with pytest.raises(ValueError, match="holds no character"):
        repeated_random_tokens(counts, 2, L, (0.5, 0.52), torch.Generator())


def test_icl_spans_and_repeat_losses_on_hand_made_losses():
    losses = torch.arange(20, dtype=torch.float).expand(3, 20)  # loss t at position t
    assert span_mean(losses, (0.1, 0.2)) == pytest.approx((2 + 3) / 2)
    assert span_mean(losses, (0.8, 1.0)) == pytest.approx(sum(range(16, 20)) / 4)
    assert span_mean(losses, (0.99, 1.0)) == pytest.approx(19)  # at least one position
    segment = torch.tensor([[4.0, 3.0, 2.0, 9.0, 1.0, 0.5, 0.5]])  # L = 4: first 3 predicted, 1 between, 3 again
    assert repeat_losses(segment, 4) == pytest.approx((3.0, (1.0 + 0.5 + 0.5) / 3))
    with pytest.raises(ValueError, match="2·4 - 1"):
        repeat_losses(segment[:, :-1], 4)


def test_the_mechanism_metrics_of_a_model_are_its_patterns_scored_and_its_losses_differenced():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16))
    windows = torch.randint(30, (4, 17), generator=torch.Generator().manual_seed(1))
    probe = MechanismProbe.build(
        torch.arange(30, 0, -1), (windows[:, :-1], windows[:, 1:]), 60, 5, (0.1, 0.9), 0, (0.0, 0.25), (0.75, 1.0)
    )
    assert probe.length == 7 and probe.repeated.shape == (5, 15)  # capped: 2·7 + 1 ≤ 16
    _, validation = capture_activations(model, windows[:, :-1])
    metrics = probe.metrics(model, validation)
    assert all(keys.is_key(key) for key in metrics)
    _, cache = capture_activations(model, probe.repeated)
    scores, chance = head_scores(cache["blocks.1.attn.pattern"], "induction", 7)
    assert metrics[keys.head_score("induction", "L1", 1)] == pytest.approx(scores[1].item())
    assert metrics[keys.head_chance("induction")] == pytest.approx(chance)
    assert metrics[keys.head_max("sink")] == max(metrics[key] for key in keys.head_scores_in(metrics, "sink").values())
    assert len(keys.head_scores_in(metrics, "prev")) == 4
    logits, _ = model(windows[:, :-1])
    per_position = torch.nn.functional.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")
    assert metrics[keys.ICL_SCORE] == pytest.approx((per_position[:, 12:].mean() - per_position[:, :4].mean()).item())
    assert metrics[keys.REPEAT_SCORE] == pytest.approx(metrics[keys.REPEAT_SECOND] - metrics[keys.REPEAT_FIRST])


def head_rows(values: list[tuple[float, float]], chance: float = 0.04) -> list[dict]:
    """Snapshots at steps 0, 10, 20, ... with two induction heads' scores."""
    return [
        {
            "step": 10 * i,
            keys.head_score("induction", "L0", 0): a,
            keys.head_score("induction", "L1", 2): b,
            keys.head_max("induction"): max(a, b),
            keys.head_chance("induction"): chance,
        }
        for i, (a, b) in enumerate(values)
    ]


def test_a_head_role_holds_from_the_snapshot_it_stays_above_chance_and_its_start():
    rows = head_rows([(0.05, 0.04), (0.05, 0.13), (0.05, 0.05), (0.06, 0.2), (0.05, 0.5)])
    result = judge_mechanism("head_induction", rows, HELD_RULE)
    assert [p["held"] for p in result["points"]] == [False, True, False, True, True]
    assert result["verdict"] == HELD and result["onset"] == 30 and result["first_held"] == 10
    assert result["points"][-1]["head"] == "L1H2" and result["points"][-1]["initial"] == 0.04


def test_a_head_role_already_there_at_step_0_or_faded_is_not_yet():
    already = judge_mechanism("head_induction", head_rows([(0.5, 0.04), (0.52, 0.04)]), HELD_RULE)
    assert already["verdict"] == NOT_YET and already["onset"] is None and already["first_held"] is None
    faded = judge_mechanism("head_induction", head_rows([(0.04, 0.04), (0.3, 0.04), (0.05, 0.04)]), HELD_RULE)
    assert faded["verdict"] == NOT_YET and faded["onset"] is None and faded["first_held"] == 10


def test_icl_holds_below_zero_and_its_start_by_the_margin():
    rows = [{"step": s, keys.ICL_SCORE: v} for s, v in [(0, 0.1), (10, -0.15), (20, -0.25), (30, -0.3)]]
    result = judge_mechanism("icl_score", rows, HELD_RULE)
    assert [p["held"] for p in result["points"]] == [False, False, True, True]
    assert result["verdict"] == HELD and result["onset"] == 20
    assert [m["mechanism"] for m in mechanisms(rows, HELD_RULE)] == ["icl_score"]  # only what was measured


@pytest.mark.slow
def test_the_tiny_run_logs_the_mechanism_metrics_at_every_snapshot(tiny_project):
    rows = [
        r for r in JsonlFile(tiny_project / "outputs" / "tiny" / "latest" / "metrics.jsonl").read() if "emb/std" in r
    ]
    assert rows
    for row in rows:
        assert {keys.ICL_SCORE, keys.REPEAT_SCORE, *(keys.head_max(role) for role in HEAD_ROLES)} <= row.keys()
        assert len(keys.head_scores_in(row, "induction")) == 2 * 2  # model=tiny: 2 layers × 2 heads
    verdicts = mechanisms(rows, HELD_RULE)
    assert [v["mechanism"] for v in verdicts] == list(keys.MECHANISMS)


def test_the_replicate_counts_the_seeds_a_mechanism_held_in_with_each_onset():
    first, second = head_rows([(0.04, 0.04), (0.2, 0.04), (0.3, 0.04)]), head_rows([(0.04, 0.04), (0.05, 0.04)])
    runs = [
        SeedRun(seed, seed - 1, "complete", [{"loss/val": 2.0, **row} for row in rows])
        for seed, rows in ((1, first), (2, second))
    ]
    data = summarize_replicate(
        runs, [1, 2], [], {}, {"z_min": 2.0, "p_max": 0.05, "early_drift": 0.25}, None, {}, HELD_RULE
    )
    (induction,) = data["mechanisms"]
    assert (induction["mechanism"], induction["n_held"], induction["over_seeds"]) == (
        "head_induction",
        1,
        "held in 1 of 2: not robust",
    )
    assert [(s["seed"], s["verdict"], s["onset"], s["head"]) for s in induction["seeds"]] == [
        (1, HELD, 10, "L0H0"),
        (2, NOT_YET, None, "L0H0"),
    ]
    lines = replicate_markdown(
        {**data, "experiment": "toy", "overrides": [], "sweep_dir": "x", "wandb_group": "g"}, None
    )
    assert "- induction head: held in 1 of 2: not robust (seed 1: from step 10 (L0H0), seed 2: not yet (L0H0))" in lines


@pytest.mark.slow
def test_the_positive_control_forms_an_induction_head_and_the_tiny_run_does_not(tmp_path, tiny_project):
    """experiment=induction (its head forms at step ≈ 125 of 600), with sparser snapshots, judged with the
    default thresholds: the induction head held, from an onset inside the run; the tiny default's did not."""
    run_stages(tmp_path, ["prepare", "train"], ["experiment=induction", "train.snapshots.every=100"])
    held_rule = dict(compose_config("train", ["experiment=induction"]).analysis.mechanisms.held)

    def induction(run: Path) -> dict:
        rows = [r for r in JsonlFile(run / "metrics.jsonl").read() if keys.head_max("induction") in r]
        return judge_mechanism("head_induction", rows, held_rule)

    control = induction(tmp_path / "outputs" / "induction" / "latest")
    assert control["verdict"] == HELD and 0 < control["onset"] < 600
    assert induction(tiny_project / "outputs" / "tiny" / "latest")["verdict"] == NOT_YET
