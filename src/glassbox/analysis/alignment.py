"""Embedding maps aligned across snapshots, so that a character keeps its place while the steps change."""

from __future__ import annotations

import numpy as np


def procrustes(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`points` [n, 2] rotated or reflected onto `target` [n, 2] (orthogonal Procrustes).

    The orthogonal R minimising |points @ R - target| is U Vᵀ for the SVD U S Vᵀ of pointsᵀ target.
    Both are centred (PCA coordinates are); distances and scale are kept, only orientation changes.
    """
    u, _, vt = np.linalg.svd(points.T @ target)
    return points @ (u @ vt)


def aligned_maps(coords: list[list[list[float]]]) -> list[np.ndarray]:
    """Every snapshot's map coordinates turned to match the last snapshot's.

    Each snapshot's PCA is only defined up to rotation and reflection; aligning all of them to the
    final picture keeps a character in one place on screen while the slider moves.
    """
    target = np.asarray(coords[-1], dtype=float)
    return [procrustes(np.asarray(c, dtype=float), target) for c in coords]
