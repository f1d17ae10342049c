"""Steering: the mean hidden state of prompts with a property minus that of prompts without it, added with
strength α while the model reads held-out prompts, against random directions of the same norm.

Like the analysis suites, the experiment is a function (model, spec) -> plain data whose "scalars" (keys:
glassbox.metric_keys) become curves over the training steps; the change goes through the model's own hook
points (`GPT.forward(..., interventions=)`) with the edits of glassbox/edits.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.prompting import SHOW_TOP, encode_prompts, last_states, next_logits, pick_layers, top_chars
from glassbox.analysis.suites import Prompt
from glassbox.config.stages import Steer
from glassbox.edits import add
from glassbox.errors import GlassboxError
from glassbox.generation import generate
from glassbox.model import GPT
from glassbox.probes.baselines import z_score
from glassbox.probes.interventions import kl_divergence, mean_difference, random_directions, target_probability
from glassbox.probes.predictions import top_k_next
from glassbox.text.vocab import Vocab


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
    def from_config(cls, settings: Steer, vocab: Vocab, model_args: dict[str, Any]) -> SteeringSpec:
        """The steer stage's settings, its prompts and characters checked against the snapshot's vocabulary."""
        prompts = settings.corpus.steering
        block_size = model_args["block_size"]
        try:
            target_ids = vocab.encode("".join(prompts.targets))
        except GlassboxError as err:
            raise GlassboxError(f"corpus.steering.targets: {err}") from None
        return cls(
            positive=encode_prompts(prompts.positive, vocab, block_size, "corpus.steering.positive"),
            negative=encode_prompts(prompts.negative, vocab, block_size, "corpus.steering.negative"),
            held_out=encode_prompts(prompts.held_out, vocab, block_size, "corpus.steering.held_out"),
            targets=prompts.targets,
            target_ids=target_ids,
            layers=pick_layers(settings.layer, model_args["n_layer"]),
            **settings.model_dump(
                include={"point", "alphas", "n_random", "seed", "gen_tokens", "temperature", "z_min"}
            ),
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
            "top": [top_chars(itos, *top_k_next(row, 1.0, SHOW_TOP)) for row in base],
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
            out = generate(
                model,
                torch.tensor([prompt.ids], device=device),
                spec.gen_tokens,
                spec.temperature,
                generator=generator,
                interventions=interventions,
            )
            texts.append([alpha, "".join(itos[i] for i in out[0, len(prompt.ids) :].tolist())])
        rows.append({"prompt": prompt.text, "texts": texts})
    return rows
