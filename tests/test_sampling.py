import pytest
import torch

from glassbox.sampling import next_token_probs, sample_next


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


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        next_token_probs(logits_batch(), temperature)


def test_non_positive_top_k_raises():
    with pytest.raises(ValueError, match="top_k"):
        next_token_probs(logits_batch(), top_k=0)


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
