"""How alike two representations of the same inputs are: linear CKA (Kornblith et al. 2019,
"Similarity of Neural Network Representations Revisited").

CKA compares the [n, d] activations of the same n positions in two places (two layers, or one layer at
two training steps). It is invariant to rotations and to scaling of either representation, so a layer
whose basis turns or whose scale grows while it computes the same thing still scores 1; it is not
invariant to arbitrary invertible maps, which would make every wide representation look the same.
"""

from __future__ import annotations

from torch import Tensor


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of x [n, d1] and y [n, d2] (rows: the same positions), in [0, 1].

    Feature-space form: |yᵀx|²_F / (|xᵀx|_F · |yᵀy|_F) on column-centred x and y, which costs d², not n².
    """
    x = x.double()
    y = y.double()
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = (y.T @ x).norm().square()
    return (cross / ((x.T @ x).norm() * (y.T @ y).norm())).item()
