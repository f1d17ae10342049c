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
    head_<role>/<layer>H<head>                  each head's score for a role (probes/heads.py): prev
                                                (attention to the previous token), dup (to the same
                                                character earlier), induction (to what followed it
                                                earlier), all three on random characters repeated
                                                twice, and sink (to position 0, on the probe batch)
    head_<role>/max, head_<role>/chance         the best head's score, and what a head attending
                                                evenly to every position it may see would score
    icl/loss_early, icl/loss_late, icl/score    mean loss at early and late positions of validation
                                                windows, and late minus early (Olsson et al.'s ICL
                                                score: negative = the longer context helps)
    icl/repeat_first, icl/repeat_second, icl/repeat_score
                                                mean loss on a natural-text segment's first and second
                                                occurrence, and second minus first (negative = copied)


    offset/<set>/<stat>                         an offset set of the corpus config (probes/arithmetic.py):
                                                cos, the mean cosine between its pairs' offsets b − a;
                                                null_mean, null_std of the same over its random
                                                frequency-matched sets; zf against them and permutation p
    analogy/<set>/<stat>                        the set's analogies b − a + c → d: mrr, the mean reciprocal
                                                rank of d; null_mrr, null_std over the random sets; zf, p;
                                                median_rank and null_median_rank, for people; c_only_mrr,
                                                the mrr ranking by c alone (without b − a); gain_zf, gain_p:
                                                mrr − c_only_mrr against the same of the random sets

and the analysis adds attn_entropy/<layer>H<head> and context_gap/<layer>, and per layer (fixed validation
windows, analysis.layer_probes):

    probe_acc/<layer>, probe_acc/majority       held-out accuracy of a logistic probe for the corpus's position
                                                property (corpus.probes.position) on that layer's residual
                                                stream, and of always answering the commoner class
    probe_control/<layer>                       the same probe's accuracy on the control task (a random label
                                                per character type, same balance: Hewitt & Liang 2019)
    probe_selectivity/<layer>                   probe_acc minus probe_control
    cka_to_final/<layer>                        linear CKA of the layer's residual stream with the same layer's
                                                at the run's last snapshot (1 = settled)
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
within_minus_cross for the groups, or an offset set's name and test: antonyms_parallel_offsets, antonyms_analogy),
and verdict/<mechanism> with onset/<mechanism> (the step from which it held and stayed held) for every
mechanism (`MECHANISMS`: head_prev, head_dup, head_induction, head_sink, icl_score, icl_repeat).

The intervention stages write their own metrics.jsonl (<run>/interventions/<kind>/<time>/), one row per
snapshot step:

    steer_<dp|z>/<layer>_alpha_<α>             change of P(targets) on the held-out prompts when α · direction
                                                is added at that layer, and its z against random directions
    patch_moved/<layer>                         how far patching the source's state moved the target's
                                                prediction toward the source's (1 = all the way)
    ablate_dloss/<layer>H<h>                    validation loss with that head ablated minus without
    scope_<p1|z>/<layer>_<target>               Patch Scope: how often the target, with the source's state
                                                of that layer written in, continues with the source's own
                                                next character (Precision@1), and its z against shuffles
    scope_lens_p1/<layer>                       the logit lens's Precision@1 on the same sources
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

ICL_EARLY = "icl/loss_early"
ICL_LATE = "icl/loss_late"
ICL_SCORE = "icl/score"
REPEAT_FIRST = "icl/repeat_first"
REPEAT_SECOND = "icl/repeat_second"
REPEAT_SCORE = "icl/repeat_score"
# The mechanisms judged held / not yet (analysis/claims.py), by id: each head role's best head, then the two
# in-context-learning scores.
HEAD_MECHANISMS = {"head_prev": "prev", "head_dup": "dup", "head_induction": "induction", "head_sink": "sink"}
ICL_MECHANISMS = {"icl_score": ICL_SCORE, "icl_repeat": REPEAT_SCORE}
MECHANISMS = (*HEAD_MECHANISMS, *ICL_MECHANISMS)

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


def head_score(role: str, layer: str, head: int) -> str:
    """`head_induction/L1H2`: one head's score for a role of probes/heads.HEAD_ROLES."""
    return f"head_{role}/{layer}H{head}"


def head_max(role: str) -> str:
    """`head_induction/max`: the best head's score for the role."""
    return f"head_{role}/max"


def head_chance(role: str) -> str:
    """`head_induction/chance`: what uniform causal attention scores for the role."""
    return f"head_{role}/chance"


def head_scores_in(row: Iterable[str], role: str) -> dict[str, str]:
    """Head (`L1H2`) -> key of its score for `role`, for the heads `row`'s keys hold, in logged order."""
    found = (re.fullmatch(rf"head_{role}/(L\d+H\d+)", key) for key in row)
    return {m.group(1): m.group(0) for m in found if m}


def context_gap(layer: str) -> str:
    return f"context_gap/{layer}"


PROBE_MAJORITY = "probe_acc/majority"  # the majority-class baseline, beside the layers' probe accuracies


def probe_accuracy(layer: str) -> str:
    return f"probe_acc/{layer}"


def probe_control(layer: str) -> str:
    return f"probe_control/{layer}"


def probe_selectivity(layer: str) -> str:
    return f"probe_selectivity/{layer}"


def cka_to_final(layer: str) -> str:
    return f"cka_to_final/{layer}"


def offset(offset_set: str, stat: str) -> str:
    """`offset/antonyms/zf`: a stat of one offset set's parallel offsets."""
    return f"offset/{offset_set}/{stat}"


def analogy(offset_set: str, stat: str) -> str:
    """`analogy/case/mrr`: a stat of one offset set's analogies."""
    return f"analogy/{offset_set}/{stat}"


def verdict(claim: str) -> str:
    """`verdict/<claim>`: a claim's verdict in the analysis run's summary."""
    return f"verdict/{claim}"


def onset(mechanism: str) -> str:
    """`onset/<mechanism>`: the step from which a mechanism held and stayed held, in the analysis run's summary."""
    return f"onset/{mechanism}"


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


def scope(stat: str, layer: str, target: str) -> str:
    """`scope_p1/L2_neutral`, `scope_z/L0_identity`: Patch Scope's Precision@1 from a source layer into a
    target, and its z against shuffled sources."""
    return f"scope_{stat}/{layer}_{target}"


def scope_lens(layer: str) -> str:
    """`scope_lens_p1/L2`: the logit lens's Precision@1 on the same sources, for comparison."""
    return f"scope_lens_p1/{layer}"
