import pytest
import torch

from glassbox.sampling import check_sampling, next_token_probs, sample_next, top_p_probs


def logits_batch() -> torch.Tensor:
    return torch.randn(4, 10, generator=torch.Generator().manual_seed(0))


def test_probs_are_softmax_of_scaled_logits_without_top_k():
    logits = logits_batch()
    for temperature in (0.5, 1.0, 2.0):
        expected = torch.softmax(logits / temperature, dim=-1)
        assert torch.allclose(next_token_probs(logits, temperature), expected)


def test_top_k_keeps_exactly_k_and_renormalises():
    logits = logits_batch()
    probs = next_token_probs(logits, temperature=0.8, top_k=3)
    assert ((probs > 0).sum(-1) == 3).all()
    assert torch.allclose(probs.sum(-1), torch.ones(4))
    kept = probs > 0
    assert torch.equal(kept, logits >= logits.topk(3, dim=-1).values[:, -1:])


def test_top_k_larger_than_vocab_keeps_everything():
    logits = logits_batch()
    assert torch.allclose(next_token_probs(logits, top_k=1000), torch.softmax(logits, dim=-1))


def test_works_on_any_leading_shape():
    logits = torch.randn(2, 3, 10)
    probs = next_token_probs(logits, top_k=2)
    assert probs.shape == (2, 3, 10)
    assert ((probs > 0).sum(-1) == 2).all()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"temperature": -1.0}, r"temperature must be >= 0, where 0 means greedy \(got -1.0\)"),
        ({"temperature": float("nan")}, r"temperature must be >= 0"),
        ({"top_k": 0}, r"top_k must be >= 1 or None \(got 0\)"),
        ({"top_k": -3}, r"top_k must be >= 1 or None \(got -3\)"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\] or None \(got 0.0\)"),
        ({"top_p": -0.5}, r"top_p must be in \(0, 1\] or None \(got -0.5\)"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\] or None \(got 1.5\)"),
    ],
)
def test_bad_settings_raise_naming_the_key_and_range(setting, message):
    with pytest.raises(ValueError, match=message):
        next_token_probs(logits_batch(), **setting)
    with pytest.raises(ValueError, match=message):
        check_sampling(**{"temperature": 1.0, **setting})


def test_temperature_zero_is_greedy():
    logits = logits_batch()
    probs = next_token_probs(logits, temperature=0.0)
    assert torch.equal(probs, torch.nn.functional.one_hot(logits.argmax(-1), 10).float())
    assert torch.equal(next_token_probs(logits, 0.0, top_k=3, top_p=0.1), probs)  # the argmax survives both
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        assert torch.equal(sample_next(probs, generator).squeeze(1), logits.argmax(-1))


def test_greedy_ties_go_to_the_lowest_id():
    logits = torch.tensor([[0.0, 2.0, 1.0, 2.0]])
    assert next_token_probs(logits, temperature=0.0).tolist() == [[0.0, 1.0, 0.0, 0.0]]


# Powers of two sum exactly in float, so "the running sum reaches p" has no rounding to hide behind.
DYADIC = torch.tensor([0.0625, 0.25, 0.0625, 0.5, 0.125])  # descending order: ids 3, 1, 4, then 0 and 2 tied


@pytest.mark.parametrize(
    ("top_p", "kept_ids"),
    [
        (0.3, [3]),
        (0.5, [3]),  # 0.5 reaches 0.5 exactly: nothing more is needed
        (0.51, [3, 1]),
        (0.75, [3, 1]),
        (0.8, [3, 1, 4]),
        (0.875, [3, 1, 4]),
        (0.9, [3, 1, 4, 0]),  # tie between ids 0 and 2: the lower id goes first
        (1.0, [0, 1, 2, 3, 4]),
    ],
)
def test_top_p_keeps_exactly_the_smallest_set_reaching_p(top_p, kept_ids):
    probs = top_p_probs(DYADIC, top_p)
    assert (probs > 0).nonzero().flatten().tolist() == sorted(kept_ids)
    assert torch.allclose(probs[kept_ids], DYADIC[kept_ids] / DYADIC[kept_ids].sum())
    assert probs.sum().item() == pytest.approx(1.0)


def test_top_p_ties_are_broken_by_token_id_in_every_row():
    uniform = torch.full((3, 4), 0.25)
    assert (top_p_probs(uniform, 0.5) > 0).tolist() == [[True, True, False, False]] * 3


def test_top_p_on_random_distributions_is_the_smallest_nucleus():
    logits = torch.randn(64, 30, generator=torch.Generator().manual_seed(4))
    full = torch.softmax(logits, dim=-1)
    for top_p in (0.1, 0.5, 0.9):
        kept = next_token_probs(logits, top_p=top_p) > 0
        for row, keep in zip(full, kept, strict=True):
            mass = row[keep].sum()
            assert mass >= top_p - 1e-6  # reaches p
            assert mass - row[keep].min() < top_p  # without its least likely token it would not
            assert row[keep].min() >= row[~keep].max()  # the most likely tokens, not any set


def test_top_k_then_top_p_measures_p_within_the_top_k():
    # Full distribution 0.4 0.3 0.2 0.1. top_k=2 renormalises to 4/7 3/7; top_p=0.5 of that is
    # token 0 alone. Nucleus first (0.4 + 0.3 reaches 0.5), then top-k, would keep tokens 0 and 1.
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    probs = next_token_probs(logits, top_k=2, top_p=0.5)
    assert probs.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert (next_token_probs(logits, top_k=2, top_p=0.6) > 0).tolist() == [True, True, False, False]


def test_temperature_is_applied_before_top_p():
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    assert (next_token_probs(logits, temperature=1.0, top_p=0.6) > 0).sum() == 2  # 0.4 + 0.3
    assert (next_token_probs(logits, temperature=0.25, top_p=0.6) > 0).sum() == 1  # sharpened: 0.4 alone > 0.6


def test_top_p_one_keeps_everything():
    logits = logits_batch()
    assert torch.equal(next_token_probs(logits, top_p=1.0), next_token_probs(logits))


def test_same_seed_same_nucleus_sample():
    probs = next_token_probs(logits_batch(), temperature=1.3, top_k=6, top_p=0.8)
    first = sample_next(probs, torch.Generator().manual_seed(5))
    assert torch.equal(first, sample_next(probs, torch.Generator().manual_seed(5)))
    assert probs.gather(1, first).gt(0).all()


def test_same_seed_same_samples():
    probs = next_token_probs(logits_batch())
    first = sample_next(probs, torch.Generator().manual_seed(42))
    second = sample_next(probs, torch.Generator().manual_seed(42))
    assert first.shape == (4, 1)
    assert torch.equal(first, second)
    draws = torch.cat([sample_next(probs, torch.Generator().manual_seed(s)) for s in range(20)], dim=1)
    assert len(draws.unique()) > 1  # the seed really matters


def test_samples_only_from_kept_tokens():
    logits = logits_batch()
    probs = next_token_probs(logits, top_k=1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        assert torch.equal(sample_next(probs, generator).squeeze(1), logits.argmax(-1))
