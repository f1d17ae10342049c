"""Probes that run a model: a tiny GPT, so every test here takes milliseconds."""

import math

import pytest
import torch

from glassbox import metric_keys as keys
from glassbox.model import GPT, GPTConfig
from glassbox.probes.activations import attention_entropy, capture_activations, residual_stats
from glassbox.probes.baselines import ChanceModel
from glassbox.probes.context import collect_target_residuals, sense_similarity
from glassbox.probes.emergence import snapshot_metrics
from glassbox.probes.lens import logit_lens
from glassbox.probes.predictions import top_k_next
from glassbox.probes.probe_set import ProbeSet
from glassbox.sampling import next_token_probs

V, N_LAYER = 40, 2


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=N_LAYER, n_head=2, n_embd=16))


@pytest.fixture
def batch():
    return torch.randint(V, (3, 10), generator=torch.Generator().manual_seed(1))


def test_capture_activations_restores_the_training_mode_and_builds_no_graph(model, batch):
    model.train()
    _, cache = capture_activations(model, batch)
    assert model.training and not cache["blocks.0.resid_post"].requires_grad
    model.eval()
    capture_activations(model, batch)
    assert not model.training


def test_residual_stats_keys_and_values(model, batch):
    _, cache = capture_activations(model, batch)
    stats = residual_stats(cache, N_LAYER)
    assert list(stats) == ["embed", "L0", "L1", "final"]
    embedded = model.wte(batch) + model.wpe(torch.arange(10))
    assert stats["embed"]["mean"] == pytest.approx(embedded.mean().item(), abs=1e-6)
    assert stats["embed"]["std"] == pytest.approx(embedded.std().item(), rel=1e-5)
    assert stats["embed"]["max"] == pytest.approx(embedded.abs().max().item(), rel=1e-5)
    last = cache["blocks.1.resid_post"]
    assert stats["L1"]["max"] == pytest.approx(last.abs().max().item())
    assert stats["final"]["std"] == pytest.approx(1.0, abs=0.05)  # LayerNorm output


def test_attention_entropy_of_uniform_and_one_hot_patterns():
    T, H = 6, 3
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    pattern = uniform.expand(2, H, T, T)
    expected = sum(math.log(t + 1) for t in range(T)) / T  # query t spreads over t + 1 keys
    assert torch.allclose(attention_entropy(pattern), torch.full((H,), expected))
    first_token_only = torch.zeros(2, H, T, T)
    first_token_only[..., 0] = 1.0
    assert torch.equal(attention_entropy(first_token_only), torch.zeros(H))


def test_attention_entropy_on_the_model_is_per_head_and_bounded(model, batch):
    _, cache = capture_activations(model, batch)
    entropy = attention_entropy(cache["blocks.0.attn.pattern"])
    assert entropy.shape == (2,)
    uniform = sum(math.log(t + 1) for t in range(10)) / 10  # the most a causal pattern can have
    assert (entropy >= 0).all() and (entropy <= uniform + 1e-5).all()


def test_top_k_next_reports_the_full_softmax_probabilities():
    logits = torch.randn(V, generator=torch.Generator().manual_seed(2))
    ids, probs = top_k_next(logits, temperature=0.8, k=5)
    full = torch.softmax(logits / 0.8, dim=-1)
    assert torch.equal(ids, torch.topk(full, 5).indices)
    assert torch.allclose(probs, full[ids])
    assert probs.sum() < 1  # not renormalised over the top 5


def test_logit_lens_at_the_last_block_is_the_model_output(model, batch):
    logits, cache = capture_activations(model, batch)
    lens = logit_lens(model, cache, position=-1, k=5, temperature=0.8)
    assert list(lens) == ["embed", "L0", "L1"]
    ids, probs = lens["L1"]
    expected = torch.topk(next_token_probs(logits[:, -1], 0.8), 5)
    assert torch.equal(ids, expected.indices) and torch.allclose(probs, expected.values)
    assert not torch.allclose(lens["embed"][1], probs)  # earlier layers really differ


def test_sense_similarity_separates_planted_senses():
    g = torch.Generator().manual_seed(3)
    said, way = torch.randn(2, 32, generator=g)
    contexts = torch.stack([said, said, said, way, way]) + 0.3 * torch.randn(5, 32, generator=g)
    senses = ["said", "said", "said", "way", "way"]
    noise = torch.randn(5, 32, generator=g)
    result = sense_similarity({"L1": contexts, "embed": noise}, senses)
    assert result["L1"]["gap"] > 0.5
    last = result["L1"]
    assert last["gap"] == pytest.approx(last["within"] - last["across"])
    assert abs(result["embed"]["gap"]) < result["L1"]["gap"]
    with pytest.raises(ValueError, match="two contexts of one sense"):
        sense_similarity({"embed": noise[:2]}, ["said", "way"])


def test_collect_target_residuals_takes_the_last_occurrence(model):
    target = 7
    prompts = [[1, 7, 2, 7, 3], [7, 4]]
    rows = collect_target_residuals(model, prompts, target)
    assert list(rows) == ["embed", "L0", "L1", "final"]
    assert all(r.shape == (2, 16) for r in rows.values())
    _, cache = capture_activations(model, torch.tensor([prompts[0]]))
    assert torch.equal(rows["L0"][0], cache["blocks.0.resid_post"][0, 3])
    with pytest.raises(ValueError, match="does not occur"):
        collect_target_residuals(model, [[1, 2]], target)


def test_snapshot_metrics_returns_every_documented_key(model, batch):
    chars = [chr(ord("a") + i) for i in range(V)]
    stoi = {c: i for i, c in enumerate(chars)}
    counts = (1000 / torch.arange(1, V + 1)).round().long()
    probes = ProbeSet.build(
        {"g1": ["a", "b", "c"], "g2": ["d", "e"]},
        [
            {"id": "a_b", "a": "a", "b": "b"},
            {"id": "a_d", "a": "a", "b": "d"},
            {"id": "f_g", "a": "f", "b": "g", "expect": "up"},
        ],
        stoi,
    )
    stats = ChanceModel.build(counts, probes, n_pairs=200, n_bands=4, min_count=5, n_permutations=50)
    model.train()
    metrics = snapshot_metrics(model, probes, counts, capture_activations(model, batch)[1], stats, n_frequent=10)

    expected = {f"emb/{s}" for s in ("std", "min", "max", "l2_mean")}
    expected |= {f"emb/{end}10/{s}" for end in ("top", "bottom") for s in ("std", "min", "max", "l2_mean")}
    expected |= {f"{kind}/{pair}" for kind in ("cos", "z", "zf", "p") for pair in ("a_b", "a_d", "f_g")}
    expected |= {"cos/within_mean", "cos/cross_mean", "baseline/mean", "baseline/std"}
    expected |= {"stat/within_minus_cross", "zf/within_minus_cross", "p/within_minus_cross"}
    expected |= {f"resid_{s}/{layer}" for layer in ("embed", "L0", "L1", "final") for s in ("mean", "std", "max")}
    assert set(metrics) == expected
    assert all(keys.is_key(key) for key in metrics)  # W&B can sort, filter and group every one
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert model.training
    assert metrics["emb/std"] == pytest.approx(model.wte.weight.std().item())
