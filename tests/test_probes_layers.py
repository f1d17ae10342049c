"""The linear probe, its control task, linear CKA and the position property: pure functions checked against
planted features, hand-made text and the invariances CKA is defined to have."""

from __future__ import annotations

import math

import pytest
import torch

from glassbox.probes.linear_probe import control_labels, majority_baseline, probe_accuracy, probe_scores
from glassbox.probes.similarity import linear_cka
from glassbox.probes.text_property import UNDECIDED, text_labels, window_labels

QUOTE = "(?<=“)[^”]*”"
SPEAKER = "(?:^|(?<=\n\n))[^\n]+:(?=\n)"


def gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def halves(n: int) -> torch.Tensor:
    return torch.arange(n) < n // 2


def test_the_probe_recovers_a_planted_linear_feature():
    x = gaussian(4000, 16, 0)
    direction = gaussian(1, 16, 1)[0]
    y = (x @ direction > 0.3).long()  # not balanced: the baseline is not 0.5
    assert probe_accuracy(x, y, halves(4000), l2=1e-2, max_iter=100) > 0.98
    assert majority_baseline(y, halves(4000)) < 0.6


def test_on_random_labels_the_probe_does_not_beat_the_majority_baseline():
    x = gaussian(4000, 64, 0)
    y = (torch.rand(4000, generator=torch.Generator().manual_seed(2)) < 0.3).long()
    accuracy, baseline = probe_accuracy(x, y, halves(4000), l2=1e-2, max_iter=100), majority_baseline(y, halves(4000))
    assert baseline == pytest.approx(0.7, abs=0.03)
    assert baseline - 0.04 < accuracy <= baseline + 0.01


def test_the_probe_is_deterministic_and_its_selectivity_is_accuracy_minus_control():
    x, y = gaussian(600, 16, 3), (gaussian(600, 1, 4)[:, 0] > 0).long()
    control = (gaussian(600, 1, 5)[:, 0] > 0).long()
    first = probe_scores(x, y, control, halves(600), 1e-3, 50)
    assert first == probe_scores(x, y, control, halves(600), 1e-3, 50)
    assert first["selectivity"] == first["accuracy"] - first["control"]
    assert first["control"] == probe_accuracy(x, control, halves(600), 1e-3, 50)


def test_control_labels_are_a_function_of_the_token_with_the_requested_balance():
    tokens = torch.randint(50, (5000,), generator=torch.Generator().manual_seed(0)) ** 2 % 97  # uneven counts
    labels = control_labels(tokens, 0.3, torch.Generator().manual_seed(1))
    for token in tokens.unique():
        assert labels[tokens == token].unique().numel() == 1
    largest = torch.unique(tokens, return_counts=True)[1].max().item()
    assert abs(labels.double().mean().item() - 0.3) <= largest / 2 / len(tokens)
    other_draw = control_labels(tokens, 0.3, torch.Generator().manual_seed(2))
    assert not torch.equal(labels, other_draw)  # random: another seed labels other types


def test_cka_is_1_under_rotation_and_scaling_and_near_0_for_independent_noise():
    x = gaussian(1000, 32, 0)
    q, _ = torch.linalg.qr(gaussian(32, 32, 1))
    assert linear_cka(x, 3.5 * x @ q + 2.0) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, gaussian(1000, 32, 2)) < 0.05
    # not merely any function of x: a different subspace scores in between
    assert 0.1 < linear_cka(x, x[:, :8]) < 0.9


def hsic(k: torch.Tensor, l: torch.Tensor) -> float:  # noqa: E741
    return (k * l).sum().item()


def test_cka_matches_the_gram_matrix_formula():
    x, y = gaussian(50, 7, 0).double(), (gaussian(50, 5, 1) + gaussian(50, 1, 2)).double()
    centre = torch.eye(50, dtype=torch.float64) - 1 / 50
    k, l = centre @ x @ x.T @ centre, centre @ y @ y.T @ centre  # noqa: E741
    assert linear_cka(x, y) == pytest.approx(hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l)), rel=1e-9)


def test_inside_a_quotation_runs_from_after_the_opening_mark_to_the_closing_one():
    text = "他道：“你好”。又道：“走，“快”走”"
    labels = "".join(str(v) for v in text_labels(text, QUOTE).tolist())
    assert labels == "0000111" + "00000" + "11111" + "00"
    # the first ” closes a quotation, whatever “ came between (nested quotations use ‘ ’ in this corpus)


def test_positions_before_a_windows_first_quote_mark_are_undecided():
    text = "甲“乙丙”丁戊“己”庚辛"
    labels = window_labels(text, QUOTE, torch.tensor([0, 3, 5]), 4, ["“", "”"])
    assert labels.tolist() == [
        [UNDECIDED, 0, 1, 1],  # 甲 before any mark; “ itself is outside; 乙丙 inside
        [UNDECIDED, 1, 0, 0],  # starts inside at 丙: unknowable until the closing ”, itself inside
        [UNDECIDED, UNDECIDED, 0, 1],
    ]
    assert window_labels(text, QUOTE, torch.tensor([10]), 2, ["“", "”"]).tolist() == [[UNDECIDED, UNDECIDED]]
    assert window_labels(text, QUOTE, torch.tensor([3]), 4, []).tolist() == [[1, 1, 0, 0]]


def test_a_speaker_line_is_a_line_after_a_blank_line_ending_in_a_colon():
    text = "First Citizen:\nSpeak, you: all.\nNo:\n\nROMEO:\nAy.\n"
    labels = text_labels(text, SPEAKER).tolist()
    assert "".join(c for c, v in zip(text, labels) if v) == "First Citizen:ROMEO:"
