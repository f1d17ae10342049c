"""Patch Scope (Ghandeharioun et al. 2024): a source's hidden state written into a target prompt, and the
model's own continuation from it: the logit lens reads a state as one character, Patch Scope lets the
later blocks and attention turn it into text. (A function (model, spec) -> plain data, as patching.py.)

The score is Precision@1: how often the patched next character equals the character the source model
itself predicts at that position. Its chance is the same agreement with the sources shuffled: what a
target that ignored which state it was given, but kept its habits, would score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from glassbox import hooks
from glassbox import metric_keys as keys
from glassbox.analysis.prompting import encode_prompts, last_states, next_logits, pick_layers
from glassbox.analysis.suites import Prompt
from glassbox.config.stages import Identity, Scope
from glassbox.edits import set_to
from glassbox.errors import GlassboxError
from glassbox.generation import generate
from glassbox.model import GPT
from glassbox.text.tokens import TokenData
from glassbox.text.vocab import Vocab


@dataclass(frozen=True)
class ScopeTarget:
    name: str  # neutral | identity: its name in metric keys and tables
    prompt: Prompt
    position: int  # where the source's state is written (from 0); the next character is read after the last


def identity_template(identity: Identity, vocab: Vocab) -> tuple[str, int]:
    """ "XX\\nYY\\n…" over the corpus's most frequent letters, then the placeholder (and the separator):
    the text and the placeholder's position. Letters only, so that no line is punctuation or a space."""
    letters = [char for char, _ in vocab.most_frequent(vocab.size) if char.isalpha()]
    if len(letters) <= identity.examples:
        raise GlassboxError(f"identity.examples={identity.examples}: the corpus has only {len(letters)} letters")
    sep = identity.separator
    placeholder = letters[identity.examples] if identity.placeholder is None else identity.placeholder
    text = "".join(f"{char}{sep}{char}\n" for char in letters[: identity.examples]) + placeholder
    return text + sep, len(text) - 1


@dataclass(frozen=True)
class ScopeSpec:
    windows: Tensor  # [n, length] validation text: every position a source of Precision@1
    prompts: list[Prompt]  # sources whose continuation from their last position is shown
    targets: list[ScopeTarget]
    point: str
    layers: list[int]
    target_layer: int | None  # None: each source layer's own
    gen_tokens: int
    n_shuffles: int
    seed: int
    z_min: float

    @classmethod
    def from_config(cls, settings: Scope, data: TokenData, model_args: dict[str, Any]) -> ScopeSpec:
        """The scope stage's settings, checked against the corpus's vocabulary and the model's size."""
        block_size, n_layer, vocab = model_args["block_size"], model_args["n_layer"], data.vocab
        if settings.length > block_size:
            raise GlassboxError(f"length={settings.length} is more than the model's block_size {block_size}")
        if settings.target_layer is not None:
            pick_layers([settings.target_layer], n_layer)
        texts = {"neutral": (settings.neutral, len(settings.neutral) - 1)}
        texts["identity"] = identity_template(settings.identity, vocab)
        targets = []
        for name in dict.fromkeys(settings.targets):
            text, position = texts[name]
            if len(text) + settings.gen_tokens > block_size:  # the target and its continuation in one context
                raise GlassboxError(
                    f"the {name} target {text!r} ({len(text)} characters) and gen_tokens={settings.gen_tokens} "
                    f"do not fit in the model's block_size {block_size}: shorten one of them"
                )
            targets.append(ScopeTarget(name, encode_prompts([text], vocab, block_size, name)[0], position))
        windows = data.fixed_batches("val", 1, settings.n_sequences, settings.length, settings.seed)[0][0]
        return cls(
            windows,
            encode_prompts(settings.prompts, vocab, block_size, "prompts"),
            targets,
            settings.point,
            pick_layers(settings.layer, n_layer),
            settings.target_layer,
            settings.gen_tokens,
            settings.n_shuffles,
            settings.seed,
            settings.z_min,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "sources": list(self.windows.shape),
            "prompts": [p.text for p in self.prompts],
            "targets": [{"name": t.name, "text": t.prompt.text, "position": t.position} for t in self.targets],
            "point": self.point,
            "layers": self.layers,
            "target_layer": self.target_layer,
            "gen_tokens": self.gen_tokens,
            "n_shuffles": self.n_shuffles,
            "seed": self.seed,
            "z_min": self.z_min,
        }


def continue_patched(model: GPT, states: Tensor, target: ScopeTarget, hook: str, n_tokens: int) -> Tensor:
    """The target run once per state [M, d], that state written at `hook` at the target's position, and
    continued greedily: [M, n_tokens] ids. Without the KV cache every step re-runs the target, so the
    written state is in place at every step (positions count from the target's start)."""
    idx = torch.tensor([target.prompt.ids], device=states.device).expand(len(states), -1)
    edit = set_to(states[:, None, :], positions=[target.position])
    out = generate(model, idx, n_tokens, 0.0, use_cache=False, interventions={hook: edit})
    return out[:, idx.size(1) :]


def against_shuffles(patched: Tensor, own: Tensor, n_shuffles: int, seed: int) -> tuple[float, float]:
    """Mean and sd of the agreement of `patched` [M] with `own` [M] shuffled, n_shuffles times."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(len(own), generator=generator) for _ in range(n_shuffles)])
    agreement = (patched.cpu()[None, :] == own.cpu()[order]).float().mean(dim=1)
    return agreement.mean().item(), agreement.std().item()


@torch.no_grad()
def patch_scope(model: GPT, spec: ScopeSpec, itos: list[str]) -> dict[str, Any]:
    """Precision@1 per target and source layer (and the logit lens's, for comparison), against chance;
    the shown prompts' continuations from their last position."""
    logits, cache = model.run_with_cache(spec.windows.to(model.lm_head.weight.device))
    own = logits.argmax(-1).flatten()  # [n · length]: the source's own next character at every position
    prompts_next = [itos[i] for i in next_logits(model, spec.prompts).argmax(-1).tolist()]
    rows, lens, texts, scalars = [], [], [], {}
    for layer in spec.layers:
        label, source_hook = hooks.layer_label(layer), hooks.act_name(spec.point, layer)
        states = cache[source_hook].flatten(0, 1)  # [n · length, d]
        lens.append({"layer": layer, "p1": (model.unembed(states).argmax(-1) == own).float().mean().item()})
        scalars[keys.scope_lens(label)] = lens[-1]["p1"]
        target_hook = hooks.act_name(spec.point, layer if spec.target_layer is None else spec.target_layer)
        prompt_states = last_states(model, spec.prompts, source_hook)
        for target in spec.targets:
            patched = continue_patched(model, states, target, target_hook, 1)[:, 0]
            p1 = (patched == own).float().mean().item()
            chance, chance_sd = against_shuffles(patched, own, spec.n_shuffles, spec.seed)
            z = (p1 - chance) / chance_sd if chance_sd > 0 else 0.0
            row = {"target": target.name, "layer": layer, "p1": p1, "chance": chance, "chance_sd": chance_sd, "z": z}
            rows.append(row | {"exceeds": z >= spec.z_min})
            scalars |= {keys.scope(stat, label, target.name): row[stat] for stat in ("p1", "z")}
            continued = continue_patched(model, prompt_states, target, target_hook, spec.gen_tokens)
            texts += [
                {"prompt": p.text, "next": char, "target": target.name, "layer": layer, "text": decode(itos, ids)}
                for p, char, ids in zip(spec.prompts, prompts_next, continued.tolist())
            ]
    return {"layers": rows, "lens": lens, "continuations": texts, "scalars": scalars}


def decode(itos: list[str], ids: list[int]) -> str:
    return "".join(itos[i] for i in ids)
