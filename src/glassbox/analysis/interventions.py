"""Intervention experiments on one model: steering vectors, activation patching, head ablation.

Watching a model shows what its activations correlate with; changing them shows what they do.
Each experiment is a function (model, spec) -> plain data, like the analysis suites, whose
"scalars" (keys: glassbox.metric_keys) become curves over the training steps. A spec is built from
the config and the snapshot's vocabulary and checks everything a user typed before any model runs
or any file is written. Every change goes through the model's own hook points
(`GPT.forward(..., interventions=)`) with the edits of glassbox/edits.py: there is no second model.

    steering      the mean hidden state of prompts with a property minus that of prompts without it,
                  added with strength α while the model reads held-out prompts, against random
                  directions of the same norm
    patching      the target prompt run with the source prompt's hidden state at one position,
                  layer by layer: where does the source's meaning travel?
    head_ablation each attention head zeroed or replaced by its mean in turn: which heads matter?
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.suites import Prompt
from glassbox.edits import add, set_to, zero
from glassbox.errors import GlassboxError
from glassbox.model import GPT, Interventions
from glassbox.probes.baselines import z_score
from glassbox.probes.interventions import (
    kl_divergence,
    mean_difference,
    moved_fraction,
    random_directions,
    target_probability,
)
from glassbox.probes.predictions import top_k_next
from glassbox.run.snapshots import check_vocab, load_snapshot
from glassbox.run.tracking import Tracker
from glassbox.text.tokens import TokenData
from glassbox.text.vocab import Vocab

SHOW_TOP = 5  # next characters listed per patched prediction
ABLATION_MODES = ("mean", "zero")


# ---------------------------------------------------------------- checking what the user typed


def _as_list(value: Any) -> list:
    """A config value as a list: lists stay lists, a single value becomes a list of one."""
    if isinstance(value, (ListConfig, list, tuple)):
        return list(OmegaConf.to_container(value) if isinstance(value, ListConfig) else value)
    return [value]


def encode_prompts(texts: Any, vocab: Vocab, block_size: int, key: str) -> list[Prompt]:
    """The prompts under config `key`, encoded; a GlassboxError for an empty set, an empty or too long
    prompt, or characters the model never saw."""
    prompts = []
    for text in [] if texts is None else _as_list(texts):
        text = str(text)
        if not text:
            raise GlassboxError(f"{key} holds an empty prompt: every prompt needs at least one character")
        if len(text) > block_size:
            raise GlassboxError(
                f"{key}: prompt {text!r} has {len(text)} characters, more than the model's block_size {block_size}"
            )
        try:
            prompts.append(Prompt(text, vocab.encode(text)))
        except GlassboxError as err:
            raise GlassboxError(f"{key}: prompt {text!r}: {err}") from None
    if not prompts:
        raise GlassboxError(
            f"{key} is empty: give at least one prompt, e.g. {key}=[...] or edit the corpus config's steering block"
        )
    return prompts


def pick_layers(value: Any, n_layer: int) -> list[int]:
    """layer=all, one block index or a list of them -> the block indices; a GlassboxError for anything else."""
    if value == "all":
        return list(range(n_layer))
    layers = _as_list(value)
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise GlassboxError(
                f"layer={value!r}: give all, a block index or a list of them, e.g. layer=[0,{n_layer - 1}]"
            )
        if not 0 <= layer < n_layer:
            raise GlassboxError(f"layer={layer} does not exist: the model has {n_layer} blocks (0 to {n_layer - 1})")
    if not layers:
        raise GlassboxError("layer=[] names no block: give all, a block index or a list of them")
    return layers


def check_point(point: Any) -> str:
    """The per-block hook point a direction is added at or a hidden state patched into."""
    if point not in hooks.RESIDUAL_WIDTH:
        raise GlassboxError(
            f"point={point!r} is not a hook point a vector can be added to or patched into; "
            f"choose one of {', '.join(hooks.RESIDUAL_WIDTH)} (each block's [batch, position, n_embd])"
        )
    return point


def check_alphas(value: Any) -> list[float]:
    """The steering strengths: finite numbers, at least one."""
    alphas = _as_list(value)
    bad = [a for a in alphas if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a)]
    if bad or not alphas:
        raise GlassboxError(
            f"alphas={value!r}: every strength α must be a number (the multiple of the direction "
            "added), e.g. alphas=[-4,-2,2,4]"
        )
    return [float(a) for a in alphas]


def check_count(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise GlassboxError(f"{key}={value!r}: give a whole number, at least {minimum}")
    return value


def encode_targets(value: Any, vocab: Vocab, key: str) -> tuple[list[str], list[int]]:
    """The target characters whose probability steering should move, and their ids."""
    chars = [str(c) for c in _as_list(value)] if value is not None else []
    if not chars or any(len(c) != 1 for c in chars):
        raise GlassboxError(f"{key}={value!r}: give one or more single characters, e.g. {key}=['：']")
    try:
        return chars, vocab.encode("".join(chars))
    except GlassboxError as err:
        raise GlassboxError(f"{key}: {err}") from None


# ---------------------------------------------------------------- running prompts


def _padded(prompts: Sequence[Prompt], device: torch.device) -> tuple[Tensor, Tensor]:
    """The prompts as one batch [B, T_max], padded on the right, and each one's last position [B].

    The model is causal, so what follows a prompt never changes its positions: one forward pass
    serves prompts of every length.
    """
    idx = torch.zeros(len(prompts), max(len(p.ids) for p in prompts), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        idx[row, : len(prompt.ids)] = torch.tensor(prompt.ids)
    last = torch.tensor([len(p.ids) - 1 for p in prompts])
    return idx.to(device), last.to(device)


def next_logits(model: GPT, prompts: Sequence[Prompt], interventions: Interventions | None = None) -> Tensor:
    """The next-character logits [B, V] after each prompt, under the interventions if any."""
    idx, last = _padded(prompts, model.lm_head.weight.device)
    logits, _ = model(idx, interventions=interventions)
    return logits[torch.arange(len(prompts)), last]


def last_states(model: GPT, prompts: Sequence[Prompt], hook: str) -> Tensor:
    """Each prompt's activation at `hook` at its last position, [B, d]."""
    idx, last = _padded(prompts, model.lm_head.weight.device)
    _, cache = model.run_with_cache(idx)
    return cache[hook][torch.arange(len(prompts)), last]


def _chars(itos: list[str], ids: Tensor, probs: Tensor) -> list[list]:
    return [[itos[i], p] for i, p in zip(ids.tolist(), probs.tolist())]


# ---------------------------------------------------------------- steering


@dataclass(frozen=True)
class SteeringSpec:
    positive: list[Prompt]  # prompts with the property (e.g. they end where speech follows)
    negative: list[Prompt]  # prompts without it
    held_out: list[Prompt]  # prompts the steering is measured on
    targets: list[str]  # the characters whose probability the property predicts
    target_ids: list[int]
    point: str  # the hook point of each block the direction is read at and added to
    layers: list[int]
    alphas: list[float]
    n_random: int
    seed: int
    gen_tokens: int
    temperature: float
    z_min: float

    @classmethod
    def from_config(cls, cfg: DictConfig, vocab: Vocab, model_args: dict[str, Any]) -> SteeringSpec:
        prompts = cfg.corpus.steering
        block_size = model_args["block_size"]
        targets, target_ids = encode_targets(prompts.targets, vocab, "corpus.steering.targets")
        if not isinstance(cfg.temperature, (int, float)) or isinstance(cfg.temperature, bool) or cfg.temperature < 0:
            raise GlassboxError(f"temperature={cfg.temperature!r}: give a number >= 0 (0 = greedy continuations)")
        return cls(
            positive=encode_prompts(prompts.positive, vocab, block_size, "corpus.steering.positive"),
            negative=encode_prompts(prompts.negative, vocab, block_size, "corpus.steering.negative"),
            held_out=encode_prompts(prompts.held_out, vocab, block_size, "corpus.steering.held_out"),
            targets=targets,
            target_ids=target_ids,
            point=check_point(cfg.point),
            layers=pick_layers(cfg.layer, model_args["n_layer"]),
            alphas=check_alphas(cfg.alphas),
            n_random=check_count(cfg.n_random, "n_random", 2),
            seed=check_count(cfg.seed, "seed", 0),
            gen_tokens=check_count(cfg.gen_tokens, "gen_tokens", 0),
            temperature=float(cfg.temperature),
            z_min=float(cfg.z_min),
        )

    def describe(self) -> dict[str, Any]:
        """The settings as plain data, for results.json and the report."""
        return {
            "positive": [p.text for p in self.positive],
            "negative": [p.text for p in self.negative],
            "held_out": [p.text for p in self.held_out],
            "targets": self.targets,
            "point": self.point,
            "layers": self.layers,
            "alphas": self.alphas,
            "n_random": self.n_random,
            "seed": self.seed,
            "gen_tokens": self.gen_tokens,
            "temperature": self.temperature,
            "z_min": self.z_min,
        }


def _steering_effect(model: GPT, spec: SteeringSpec, hook: str, vector: Tensor, base: Tensor) -> dict[str, Any]:
    """What adding `vector` at every position of `hook` does to the held-out prompts' next character:
    P(targets) per prompt, its mean change from the unsteered `base` logits, and the mean KL."""
    steered = next_logits(model, spec.held_out, {hook: add(vector)})
    p_now = target_probability(steered, spec.target_ids)
    p_base = target_probability(base, spec.target_ids)
    return {
        "p_targets": p_now.tolist(),
        "dp": (p_now - p_base).mean().item(),
        "kl": kl_divergence(base, steered).mean().item(),
    }


@torch.no_grad()
def steering(model: GPT, spec: SteeringSpec, itos: list[str]) -> dict[str, Any]:
    """The steering direction at each layer and what each α · direction does, against random directions.

    For every layer and α: P(targets) on the held-out prompts, its mean change dp, the KL from the
    unsteered distribution, the same for `n_random` random directions of the direction's norm
    (mean ± sd), and z = (dp - their mean) / their sd. "best" is the layer and α whose dp moves
    furthest the way α points (up for α > 0, down for α < 0); at its layer, each held-out prompt
    is continued without steering and with every α.
    """
    base = next_logits(model, spec.held_out)
    layers, directions, scalars = [], {}, {}
    for layer in spec.layers:
        hook = hooks.act_name(spec.point, layer)
        direction = mean_difference(last_states(model, spec.positive, hook), last_states(model, spec.negative, hook))
        directions[hook] = direction
        randoms = random_directions(direction, spec.n_random, torch.Generator().manual_seed(spec.seed))
        rows = []
        for alpha in spec.alphas:
            effect = _steering_effect(model, spec, hook, alpha * direction, base)
            chance = [_steering_effect(model, spec, hook, alpha * r, base) for r in randoms]
            null = torch.tensor([c["dp"] for c in chance])
            kls = torch.tensor([c["kl"] for c in chance])
            z = z_score(torch.tensor(effect["dp"]), null).item()
            rows.append(
                {
                    "alpha": alpha,
                    **effect,
                    "z": z,
                    "exceeds": math.copysign(1, alpha) * z >= spec.z_min,
                    "random": {
                        "dp_mean": null.mean().item(),
                        "dp_sd": null.std().item(),
                        "kl_mean": kls.mean().item(),
                        "kl_sd": kls.std().item(),
                        "norm": randoms.norm(dim=-1).mean().item(),
                    },
                }
            )
            scalars[keys.steer(hooks.layer_label(layer), alpha, "dp")] = effect["dp"]
            scalars[keys.steer(hooks.layer_label(layer), alpha, "z")] = z
        layers.append({"layer": layer, "hook": hook, "norm": direction.norm().item(), "alphas": rows})

    cells = [(layer, row) for layer in layers for row in layer["alphas"]]
    best_layer, best = max(cells, key=lambda cell: math.copysign(1, cell[1]["alpha"]) * cell[1]["dp"])
    hook = best_layer["hook"]
    return {
        "base": {
            "p_targets": target_probability(base, spec.target_ids).tolist(),
            "top": [_chars(itos, *top_k_next(row, 1.0, SHOW_TOP)) for row in base],
        },
        "layers": layers,
        "best": {
            "layer": best_layer["layer"],
            "alpha": best["alpha"],
            "dp": best["dp"],
            "z": best["z"],
            "exceeds": best["exceeds"],
            "random_dp_mean": best["random"]["dp_mean"],
            "random_dp_sd": best["random"]["dp_sd"],
        },
        "continuations": continuations(model, spec, itos, hook, directions[hook]),
        "scalars": scalars,
    }


def continuations(
    model: GPT, spec: SteeringSpec, itos: list[str], hook: str, direction: Tensor
) -> list[dict[str, Any]]:
    """Each held-out prompt continued with α · direction added at `hook`, for α = 0 (unsteered) and
    every α of the spec, each drawn with the same seed (greedy at temperature 0): [[α, text], ...]."""
    device = model.lm_head.weight.device
    rows = []
    for prompt in spec.held_out:
        texts = []
        for alpha in sorted({0.0, *spec.alphas}):
            generator = torch.Generator(device=device).manual_seed(spec.seed)
            interventions = {hook: add(alpha * direction)} if alpha else None
            out = model.generate(
                torch.tensor([prompt.ids], device=device),
                spec.gen_tokens,
                spec.temperature,
                generator=generator,
                interventions=interventions,
            )
            texts.append([alpha, "".join(itos[i] for i in out[0, len(prompt.ids) :].tolist())])
        rows.append({"prompt": prompt.text, "texts": texts})
    return rows


# ---------------------------------------------------------------- patching


@dataclass(frozen=True)
class PatchSpec:
    source: Prompt  # whose hidden state is patched in
    target: Prompt  # the prompt that runs with it
    point: str
    layers: list[int]
    position: int  # in both prompts; negative counts from the end

    @classmethod
    def from_config(cls, cfg: DictConfig, vocab: Vocab, model_args: dict[str, Any]) -> PatchSpec:
        block_size = model_args["block_size"]
        source = encode_prompts([cfg.source], vocab, block_size, "source")[0]
        target = encode_prompts([cfg.target], vocab, block_size, "target")[0]
        shortest = min(len(source.ids), len(target.ids))
        position = cfg.position
        if isinstance(position, bool) or not isinstance(position, int) or not -shortest <= position < shortest:
            raise GlassboxError(
                f"position={position!r}: give a position both prompts have, from 0 to {shortest - 1} "
                f"or from -{shortest} (the first) to -1 (the last)"
            )
        return cls(source, target, check_point(cfg.point), pick_layers(cfg.layer, model_args["n_layer"]), position)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source.text,
            "target": self.target.text,
            "point": self.point,
            "layers": self.layers,
            "position": self.position,
        }


@torch.no_grad()
def patching(model: GPT, spec: PatchSpec, itos: list[str]) -> dict[str, Any]:
    """The target prompt's next character with the source's hidden state patched in at each layer.

    "char" is the source's most likely next character; per layer: its probability after the patch,
    how far that moved from the target's own probability toward the source's ("moved": 0 = not at
    all, 1 = all the way; None when the two agree within 0.01), the KL from the target's own
    distribution and the patched top characters.
    """
    device = model.lm_head.weight.device
    source_logits, source_cache = model.run_with_cache(torch.tensor([spec.source.ids], device=device))
    target_idx = torch.tensor([spec.target.ids], device=device)
    source_next, target_next = source_logits[0, -1], model(target_idx)[0][0, -1]
    char = source_next.argmax().item()
    p_source = source_next.softmax(-1)[char].item()
    p_target = target_next.softmax(-1)[char].item()
    rows, scalars = [], {}
    for layer in spec.layers:
        hook = hooks.act_name(spec.point, layer)
        state = source_cache[hook][0, spec.position]
        patched = model(target_idx, interventions={hook: set_to(state, positions=[spec.position])})[0][0, -1]
        p_char = patched.softmax(-1)[char].item()
        moved = moved_fraction(p_target, p_char, p_source)
        rows.append(
            {
                "layer": layer,
                "hook": hook,
                "p_char": p_char,
                "moved": moved,
                "kl": kl_divergence(target_next, patched).item(),
                "top": _chars(itos, *top_k_next(patched, 1.0, SHOW_TOP)),
            }
        )
        if moved is not None:
            scalars[keys.patch_moved(hooks.layer_label(layer))] = moved
    return {
        "char": itos[char],
        "p_source": p_source,
        "p_target": p_target,
        "source_top": _chars(itos, *top_k_next(source_next, 1.0, SHOW_TOP)),
        "target_top": _chars(itos, *top_k_next(target_next, 1.0, SHOW_TOP)),
        "layers": rows,
        "scalars": scalars,
    }


# ---------------------------------------------------------------- head ablation


@dataclass(frozen=True)
class AblationSpec:
    mode: str  # mean: each head's output replaced by its mean over the validation windows; zero: by zeros
    prompts: list[Prompt]  # whose next-character probability is watched
    inputs: Tensor  # validation windows [n, block_size] the loss is measured on ...
    targets: Tensor  # ... and their next characters

    @classmethod
    def from_config(cls, cfg: DictConfig, data: TokenData, model_args: dict[str, Any]) -> AblationSpec:
        if cfg.mode not in ABLATION_MODES:
            raise GlassboxError(
                f"mode={cfg.mode!r}: choose mean (replace a head's output by its mean over the "
                "validation windows) or zero"
            )
        prompts = encode_prompts(cfg.prompts, data.vocab, model_args["block_size"], "prompts")
        n_sequences = check_count(cfg.n_sequences, "n_sequences", 1)
        seed = check_count(cfg.seed, "seed", 0)
        inputs, targets = data.fixed_batches("val", 1, n_sequences, model_args["block_size"], seed)[0]
        return cls(cfg.mode, prompts, inputs, targets)

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "prompts": [p.text for p in self.prompts],
            "validation_windows": list(self.inputs.shape),
        }


@torch.no_grad()
def head_ablation(model: GPT, spec: AblationSpec, itos: list[str]) -> dict[str, Any]:
    """Every head of every layer ablated in turn: the validation loss change and the change of each
    prompt's probability for the character the intact model predicts. Heads ranked by loss change."""
    device = model.lm_head.weight.device
    inputs, targets = spec.inputs.to(device), spec.targets.to(device)
    _, cache = model.run_with_cache(inputs)
    _, base_loss = model(inputs, targets)
    base_next = next_logits(model, spec.prompts)
    chars = base_next.argmax(-1)
    rows_of_prompts = torch.arange(len(spec.prompts))
    p_base = base_next.softmax(-1)[rows_of_prompts, chars]
    heads, scalars = [], {}
    for layer in range(model.config.n_layer):
        hook = hooks.act_name("head_out", layer)
        mean = cache[hook].mean(dim=(0, 1))  # [H, hd]: each head's average output on the batch
        for head in range(model.config.n_head):
            edit = set_to(mean, heads=[head]) if spec.mode == "mean" else zero(heads=[head])
            _, loss = model(inputs, targets, interventions={hook: edit})
            p_now = next_logits(model, spec.prompts, {hook: edit}).softmax(-1)[rows_of_prompts, chars]
            dloss = (loss - base_loss).item()
            heads.append(
                {
                    "layer": layer,
                    "head": head,
                    "loss": loss.item(),
                    "dloss": dloss,
                    "p_chars": p_now.tolist(),
                    "dp": (p_now - p_base).mean().item(),
                }
            )
            scalars[keys.ablation_dloss(hooks.layer_label(layer), head)] = dloss
    return {
        "base_loss": base_loss.item(),
        "prompts": [
            {"prompt": p.text, "char": itos[c], "p": pb}
            for p, c, pb in zip(spec.prompts, chars.tolist(), p_base.tolist())
        ],
        "heads": heads,
        "ranked": [[h["layer"], h["head"]] for h in sorted(heads, key=lambda h: -h["dloss"])],
        "scalars": scalars,
    }


# ---------------------------------------------------------------- over training


def over_snapshots(
    paths: list[Path], vocab: Vocab, experiment: Callable[[GPT], dict[str, Any]], tracker: Tracker
) -> list[dict[str, Any]]:
    """The experiment on each snapshot in turn, its scalars logged at the snapshot's step: [{"step": N, ...}]."""
    steps = []
    for path in paths:
        snapshot = load_snapshot(path)
        check_vocab(snapshot, vocab.hash, f"the vocabulary of {paths[-1]}")
        result = experiment(snapshot.model())
        tracker.log(result["scalars"], snapshot.step)
        steps.append({"step": snapshot.step, **result})
    return steps
