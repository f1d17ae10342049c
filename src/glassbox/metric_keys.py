"""Metric keys: the one place that builds and parses the names of every logged number.

metrics.jsonl, W&B, the report, the sweep summary and the explorer all use these names, so a
key is spelled here and nowhere else. Every key follows W&B's naming rule: fragments of ASCII
letters, digits and `_` (not starting with a digit), joined by `/`, the first fragment naming the
section a W&B workspace groups it under (`is_key` checks one). So a section holds the numbers a
person compares side by side: every pair's cosine in `cos/`, every z in `z/`, every layer's
residual std in `resid_std/`.

Names inside keys: a probe pair by its id from the corpus config (`shuo_dao` for 说–道,
`ProbePair.name`; its characters are `ProbePair.label`, for people), a layer of the residual stream
by its label from `glassbox.hooks.residual_stream` (`embed`, `L0` … `L<n-1>`, `final`), a head by
its layer and number (`L0H1`). One row of metrics.jsonl per snapshot step holds:

    tokens, lr, loss/val, loss/train            training progress (loss/train: mean of recent batches)
    emb/<stat>                                  the token embedding: std, min, max, l2_mean (mean row norm)
    emb/<top|bottom><n>/<stat>                  the same over the n most / least frequent characters
    cos/<pair>                                  raw cosine of each probe pair
    cos/within_mean, cos/cross_mean             mean over all same-group / different-group combinations
    baseline/mean, baseline/std                 cosine of random frequent pairs (the global null)
    z/<pair>, zf/<pair>, p/<pair>               z against the global null, against the pair's
                                                frequency-matched null, permutation p (expected side)
    stat/within_minus_cross, zf/within_minus_cross, p/within_minus_cross
                                                the group statistic, its z and p against its relabelings
    dcos/<pair>, zf_dcos/<pair>, p_dcos/<pair>  the pair's change of cosine since step 0, its z against
                                                the same change of its frequency-matched null pairs, and
                                                the permutation p of that change (expected side); not at
                                                step 0, where nothing has changed yet
    resid_mean/<layer>, resid_std/<layer>, resid_max/<layer>
                                                the residual stream on the probe batch, per layer
    offset/<set>/<stat>                         an offset set of the corpus config (probes/arithmetic.py):
                                                cos, the mean cosine between its pairs' offsets b − a;
                                                null_mean, null_std of the same over its random
                                                frequency-matched sets; zf against them and permutation p
    analogy/<set>/<stat>                        the set's analogies b − a + c → d: mrr, the mean reciprocal
                                                rank of d; null_mrr, null_std over the random sets; zf, p;
                                                median_rank and null_median_rank, for people; c_only_mrr,
                                                the mrr ranking by c alone (without b − a); gain_zf, gain_p:
                                                mrr − c_only_mrr against the same of the random sets

and the analysis adds attn_entropy/<layer>H<head> and context_gap/<layer>.
progress.jsonl rows hold loss/train_batch, lr and tokens_per_sec.

W&B alone also gets, all on the x-axis `train/step` (run/tracking.py):

    emb/row_norms                               histogram of the embedding's row norms, every snapshot
    emb/projector                               table (char, count, group, vector) for the Embedding
                                                Projector, at wandb.projector_steps and the last step
    attention/patterns                          every layer and head on the first prompt, every
                                                analysed snapshot
    tables/<name>                               the analysis tables (neighbours, predictions, samples,
                                                logit_lens, claims)

and in the run summary loss/val's minimum (best validation loss), final/loss_val and final/step,
and on the analysis run verdict/<claim> and zf/<claim> for every claim (`claim_id`: a pair's id, or
within_minus_cross for the groups, or an offset set's name and test: antonyms_parallel_offsets, antonyms_analogy).

The intervention stages write their own metrics.jsonl (<run>/interventions/<kind>/<time>/), one row per
snapshot step:

    steer_<dp|z>/<layer>_alpha_<α>             change of P(targets) on the held-out prompts when α · direction
                                                is added at that layer, and its z against random directions
    patch_moved/<layer>                         how far patching the source's state moved the target's
                                                prediction toward the source's (1 = all the way)
    ablate_dloss/<layer>H<h>                    validation loss with that head ablated minus without
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
GROUP_ID = "within_minus_cross"  # the group statistic: mean within-group minus mean cross-group cosine
GROUP_STAT = f"stat/{GROUP_ID}"
GROUP_ZF = f"zf/{GROUP_ID}"
GROUP_P = f"p/{GROUP_ID}"

PAIR_STATS = ("cos", "z", "zf", "p")  # the per-pair metrics, in the order they are logged
CHANGE_STATS = ("dcos", "zf_dcos", "p_dcos")  # the per-pair change since step 0, against its null
EMBEDDING_STATS = ("std", "min", "max", "l2_mean")
RESIDUAL_STATS = ("mean", "std", "max")

# W&B only (see the module docstring).
ROW_NORMS = "emb/row_norms"
PROJECTOR = "emb/projector"
ATTENTION_PATTERNS = "attention/patterns"
FINAL_LOSS_VAL = "final/loss_val"
FINAL_STEP = "final/step"

FRAGMENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
# Pair ids a pair may not take: they already name group statistics in the cos/, zf/ and p/ sections.
RESERVED_IDS = frozenset({"within_mean", "cross_mean", GROUP_ID})


def is_fragment(name: str) -> bool:
    """Whether `name` may stand between two `/` of a key (a pair id, a layer label)."""
    return FRAGMENT.fullmatch(name) is not None


def is_key(key: str) -> bool:
    """Whether `key` follows W&B's naming rule: fragments joined by `/`."""
    return all(is_fragment(part) for part in key.split("/"))


def emb(stat: str, subset: str | None = None) -> str:
    """`emb/std` for all characters, `emb/top100/std` for a frequency subset."""
    return f"emb/{stat}" if subset is None else f"emb/{subset}/{stat}"


def pair(stat: str, pair_name: str) -> str:
    """`<stat>/<pair>` for a stat of PAIR_STATS or CHANGE_STATS, e.g. `zf/说-道`, `p_dcos/说-山`."""
    return f"{stat}/{pair_name}"


def residual(layer: str, stat: str) -> str:
    """`resid_std/L0`: one statistic of the residual stream at one layer."""
    return f"resid_{stat}/{layer}"


def attn_entropy(layer: str, head: int) -> str:
    """`attn_entropy/L0H1`."""
    return f"attn_entropy/{layer}H{head}"


def context_gap(layer: str) -> str:
    return f"context_gap/{layer}"


def offset(offset_set: str, stat: str) -> str:
    """`offset/antonyms/zf`: a stat of one offset set's parallel offsets."""
    return f"offset/{offset_set}/{stat}"


def analogy(offset_set: str, stat: str) -> str:
    """`analogy/case/mrr`: a stat of one offset set's analogies."""
    return f"analogy/{offset_set}/{stat}"


def verdict(claim: str) -> str:
    """`verdict/<claim>`: a claim's verdict in the analysis run's summary."""
    return f"verdict/{claim}"


def claim_id(name: str, test: str) -> str:
    """A claim's key fragment: its pair's id (or the group statistic's) for the level test; a cross pair's
    other tests add theirs, `shuo_shan_no_association`, `shuo_shan_moving_apart`."""
    return name if test == "level" else f"{name}_{test.replace(' ', '_')}"


def table(name: str) -> str:
    """`tables/<name>`: one of the analysis run's W&B tables."""
    return f"tables/{name}"


def embedding_subsets(keys: Iterable[str]) -> list[str]:
    """The frequency subsets (e.g. top100, bottom100) that `keys` hold embedding statistics for."""
    return sorted({m.group(1) for key in keys if (m := re.fullmatch(r"emb/((?:top|bottom)\d+)/\w+", key))})


def residual_layers(keys: Iterable[str]) -> list[str]:
    """The layers that `keys` hold residual statistics for, in logged order."""
    return list(dict.fromkeys(m.group(1) for key in keys if (m := re.fullmatch(r"resid_std/(\w+)", key))))


def steer(layer: str, alpha: float, stat: str) -> str:
    """`steer_dp/L2_alpha_0p5`, `steer_z/L2_alpha_m1` (stat: dp or z; the sign and point of α spelled out)."""
    return f"steer_{stat}/{layer}_alpha_{f'{alpha:g}'.replace('-', 'm').replace('.', 'p')}"


def patch_moved(layer: str) -> str:
    return f"patch_moved/{layer}"


def ablation_dloss(layer: str, head: int) -> str:
    return f"ablate_dloss/{layer}H{head}"
