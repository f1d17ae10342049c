"""Linear probes: can a logistic regression read a property of each position off a layer's residual stream?

A probe's accuracy alone says little: a rich enough probe learns any labelling of the tokens it sees.
So each probe is scored against two references (Hewitt & Liang 2019, "Designing and Interpreting
Probes with Control Tasks"): the majority-class baseline (what answering the commoner class gets), and a
control task, the same probe fit on labels that are a random but consistent function of the token alone,
with the property's class balance. Selectivity = task accuracy − control accuracy: high only when the
layer encodes the property beyond the identity of the character at that position.

The probe is fit on one set of positions and scored on another (whole windows apart, so neighbouring
positions of one quotation never sit on both sides). Features are standardised with the fit split's mean
and std, so one L2 strength means the same at the embedding (std ~0.02) and the last block (std ~2).
Everything runs in float64 on the CPU with Newton's method: deterministic, and well under a second
for a few thousand positions of 256 dims.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fit_logistic(x: Tensor, y: Tensor, l2: float, max_iter: int) -> tuple[Tensor, Tensor]:
    """Weights [d] and bias of a binary logistic regression of y (0/1) [n] on x [n, d]:
    mean cross-entropy + l2 · |w|², minimised by Newton's method from zero.

    The loss is convex and d is a residual stream's width, so each step solves one (d+1) × (d+1) system
    and a handful of steps reach the minimum exactly (no line search, no optimizer state, no warm-up).
    """
    x, y = x.double(), y.double()
    n, d = x.shape
    design = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # the last column: the bias
    penalty = torch.full((d + 1,), 2 * l2, dtype=torch.float64)
    penalty[-1] = 0.0  # the bias is not decayed
    theta = torch.zeros(d + 1, dtype=torch.float64)
    for _ in range(max_iter):
        p = torch.sigmoid(design @ theta)
        gradient = design.T @ (p - y) / n + penalty * theta
        hessian = (design.T * (p * (1 - p))) @ design / n + torch.diag(penalty)
        step = torch.linalg.solve(hessian, gradient)
        theta = theta - step
        if step.abs().max() < 1e-9:
            break
    return theta[:-1], theta[-1]


def probe_accuracy(x: Tensor, y: Tensor, is_train: Tensor, l2: float, max_iter: int) -> float:
    """Held-out accuracy of a logistic probe fit on the rows where is_train, scored on the others."""
    x = x.double().cpu()
    y, is_train = y.cpu(), is_train.cpu()
    mean, std = x[is_train].mean(0), x[is_train].std(0).clamp_min(1e-8)
    x = (x - mean) / std
    weight, bias = fit_logistic(x[is_train], y[is_train], l2, max_iter)
    predicted = (x[~is_train] @ weight + bias > 0).long()
    return (predicted == y[~is_train]).double().mean().item()


def majority_baseline(y: Tensor, is_train: Tensor) -> float:
    """Held-out accuracy of always answering the scored positions' commoner class: the best any constant
    answer does there (the fit split's commoner class can be the rarer one where the split is by window)."""
    share = y[~is_train].double().mean().item()
    return max(share, 1 - share)


def control_labels(token_ids: Tensor, positive_share: float, generator: torch.Generator) -> Tensor:
    """A control task's labels (0/1) for positions holding token_ids [n]: every character type gets one label
    at random, so the label is a function of the token alone, and the types labelled 1 cover about
    positive_share of the positions (within half the count of the commonest type).

    The types are shuffled and labelled 1 in that order while the share they cover stays nearest the target.
    """
    types, counts = torch.unique(token_ids.cpu(), return_counts=True)
    order = torch.randperm(len(types), generator=generator)
    covered_before = torch.cumsum(counts[order], 0) - counts[order]
    positive = covered_before + counts[order] / 2 < positive_share * len(token_ids)
    type_label = torch.zeros(int(types.max()) + 1, dtype=torch.long)
    type_label[types[order[positive]]] = 1
    return type_label[token_ids.cpu()]


def probe_scores(x: Tensor, y: Tensor, control: Tensor, is_train: Tensor, l2: float, max_iter: int) -> dict[str, float]:
    """accuracy, baseline (majority class), control (the control task's accuracy) and selectivity
    (accuracy − control) of a probe of x [n, d] for y [n], with control labels [n] of the same positions."""
    accuracy = probe_accuracy(x, y, is_train, l2, max_iter)
    control_accuracy = probe_accuracy(x, control, is_train, l2, max_iter)
    return {
        "accuracy": accuracy,
        "baseline": majority_baseline(y.cpu(), is_train.cpu()),
        "control": control_accuracy,
        "selectivity": accuracy - control_accuracy,
    }
