"""Head ablation: each attention head zeroed or replaced by its mean in turn: which heads matter?
(A function (model, spec) -> plain data, as glassbox/analysis/steering.py.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.prompting import encode_prompts, next_logits
from glassbox.analysis.suites import Prompt
from glassbox.config.stages import Ablate
from glassbox.edits import set_to, zero
from glassbox.model import GPT
from glassbox.text.tokens import TokenData


@dataclass(frozen=True)
class AblationSpec:
    mode: str  # mean: each head's output replaced by its mean over the validation windows; zero: by zeros
    prompts: list[Prompt]  # whose next-character probability is watched
    inputs: Tensor  # validation windows [n, block_size] the loss is measured on ...
    targets: Tensor  # ... and their next characters

    @classmethod
    def from_config(cls, settings: Ablate, data: TokenData, model_args: dict[str, Any]) -> AblationSpec:
        """The ablate stage's settings, its prompts checked against the corpus's vocabulary."""
        prompts = encode_prompts(settings.prompts, data.vocab, model_args["block_size"], "prompts")
        block_size, n_sequences = model_args["block_size"], settings.n_sequences
        inputs, targets = data.fixed_batches("val", 1, n_sequences, block_size, settings.seed)[0]
        return cls(settings.mode, prompts, inputs, targets)

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
