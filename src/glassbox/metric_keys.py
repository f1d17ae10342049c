"""Metric keys: the one place that builds and parses the names of every logged number.

metrics.jsonl, W&B, the report, the sweep summary and the explorer all use these names, so a
key is spelled here and nowhere else. One row of metrics.jsonl per snapshot step holds:

    tokens, lr, loss/val, loss/train            training progress (loss/train: mean of recent batches)
    emb/<stat>                                  the token embedding: std, min, max, l2_mean (mean row norm)
    emb/<top|bottom><n>/<stat>                  the same over the n most / least frequent characters
    cos/<pair>                                  raw cosine of each probe pair (pair: `ProbePair.name`)
    cos/within_mean, cos/cross_mean             mean over all same-group / different-group combinations
    baseline/mean, baseline/std                 cosine of random frequent pairs (the global null)
    z/<pair>, zf/<pair>, p/<pair>               z against the global null, against the pair's
                                                frequency-matched null, permutation p (expected side)
    stat/within_minus_cross, p/within_minus_cross   the group statistic and its p
    resid/<layer>/<mean|std|max>                the residual stream on the probe batch, per layer

and the analysis adds zf/within_minus_cross, attn_entropy/<layer>/head<h> and context/<layer>/gap.
progress.jsonl rows hold loss/train_batch, lr and tokens_per_sec.

The intervention stages write their own metrics.jsonl (<run>/interventions/<kind>/<time>/), one row per
snapshot step:

    steer/<layer>/alpha=<α>/<dp|z>              change of P(targets) on the held-out prompts when α · direction
                                                is added at that layer, and its z against random directions
    patch/<layer>/moved                         how far patching the source's state moved the target's
                                                prediction toward the source's (1 = all the way)
    ablate/<layer>/head<h>/dloss                validation loss with that head ablated minus without
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TOKENS = "tokens"
LR = "lr"
LOSS_VAL = "loss/val"
LOSS_TRAIN = "loss/train"
LOSS_TRAIN_BATCH = "loss/train_batch"
TOKENS_PER_SEC = "tokens_per_sec"

BASELINE_MEAN = "baseline/mean"
BASELINE_STD = "baseline/std"
WITHIN_MEAN = "cos/within_mean"
CROSS_MEAN = "cos/cross_mean"
GROUP_STAT = "stat/within_minus_cross"  # mean within-group minus mean cross-group cosine
GROUP_ZF = "zf/within_minus_cross"
GROUP_P = "p/within_minus_cross"

PAIR_STATS = ("cos", "z", "zf", "p")  # the per-pair metrics, in the order they are logged
EMBEDDING_STATS = ("std", "min", "max", "l2_mean")
RESIDUAL_STATS = ("mean", "std", "max")


def emb(stat: str, subset: str | None = None) -> str:
    """`emb/std` for all characters, `emb/top100/std` for a frequency subset."""
    return f"emb/{stat}" if subset is None else f"emb/{subset}/{stat}"


def pair(stat: str, pair_name: str) -> str:
    """`cos/<pair>`, `z/<pair>`, `zf/<pair>` or `p/<pair>`."""
    return f"{stat}/{pair_name}"


def residual(layer: str, stat: str) -> str:
    return f"resid/{layer}/{stat}"


def attn_entropy(layer: str, head: int) -> str:
    return f"attn_entropy/{layer}/head{head}"


def context_gap(layer: str) -> str:
    return f"context/{layer}/gap"


def embedding_subsets(keys: Iterable[str]) -> list[str]:
    """The frequency subsets (e.g. top100, bottom100) that `keys` hold embedding statistics for."""
    return sorted({m.group(1) for key in keys if (m := re.fullmatch(r"emb/((?:top|bottom)\d+)/\w+", key))})


def residual_layers(keys: Iterable[str]) -> list[str]:
    """The layers that `keys` hold residual statistics for, in logged order."""
    return list(dict.fromkeys(m.group(1) for key in keys if (m := re.fullmatch(r"resid/(.+)/std", key))))


def steer(layer: str, alpha: float, stat: str) -> str:
    """`steer/blocks.2/alpha=4/dp` (stat: dp or z)."""
    return f"steer/{layer}/alpha={alpha:g}/{stat}"


def patch_moved(layer: str) -> str:
    return f"patch/{layer}/moved"


def ablation_dloss(layer: str, head: int) -> str:
    return f"ablate/{layer}/head{head}/dloss"
