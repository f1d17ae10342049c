"""Patching: the target prompt run with the source prompt's hidden state at one position, layer by layer:
where does the source's meaning travel? (A function (model, spec) -> plain data, as glassbox/analysis/steering.py.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.prompting import SHOW_TOP, encode_prompts, pick_layers, top_chars
from glassbox.analysis.suites import Prompt
from glassbox.config.stages import Patch
from glassbox.edits import set_to
from glassbox.errors import GlassboxError
from glassbox.model import GPT
from glassbox.probes.interventions import kl_divergence, moved_fraction
from glassbox.probes.predictions import top_k_next
from glassbox.text.vocab import Vocab


@dataclass(frozen=True)
class PatchSpec:
    source: Prompt  # whose hidden state is patched in
    target: Prompt  # the prompt that runs with it
    point: str
    layers: list[int]
    position: int  # in both prompts; negative counts from the end

    @classmethod
    def from_config(cls, settings: Patch, vocab: Vocab, model_args: dict[str, Any]) -> PatchSpec:
        """The patch stage's settings, its prompts checked against the snapshot's vocabulary and each other."""
        block_size = model_args["block_size"]
        source = encode_prompts([settings.source], vocab, block_size, "source")[0]
        target = encode_prompts([settings.target], vocab, block_size, "target")[0]
        shortest = min(len(source.ids), len(target.ids))
        position = settings.position
        if not -shortest <= position < shortest:
            raise GlassboxError(
                f"position={position!r}: give a position both prompts have, from 0 to {shortest - 1} "
                f"or from -{shortest} (the first) to -1 (the last)"
            )
        return cls(source, target, settings.point, pick_layers(settings.layer, model_args["n_layer"]), position)

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
                "top": top_chars(itos, *top_k_next(patched, 1.0, SHOW_TOP)),
            }
        )
        if moved is not None:
            scalars[keys.patch_moved(hooks.layer_label(layer))] = moved
    return {
        "char": itos[char],
        "p_source": p_source,
        "p_target": p_target,
        "source_top": top_chars(itos, *top_k_next(source_next, 1.0, SHOW_TOP)),
        "target_top": top_chars(itos, *top_k_next(target_next, 1.0, SHOW_TOP)),
        "layers": rows,
        "scalars": scalars,
    }
