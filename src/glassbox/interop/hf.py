"""A local Hugging Face causal LM seen through glassbox's hook-point names.

glassbox's probe functions (logit lens, context, attention, capture_activations) ask a model for
three things: `config.n_layer`, `run_with_cache(idx)` returning activations under names like
`blocks.{i}.resid_post`, and `unembed(resid)`. `HookedCausalLM` answers them for any
transformers causal LM, from `output_hidden_states` / `output_attentions` and the model's own
final norm and output embedding, so the very functions that analyse glassbox's model analyse it.

Everything is read from local folders: nothing is downloaded (HF_HUB_OFFLINE, local_files_only).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from glassbox.errors import GlassboxError
from glassbox.interop import require
from glassbox.text.vocab import Vocab

# Where architectures keep the norm applied before the unembedding, tried in order:
# GPT-2 / GPT-J / GPT-Neo (and glassbox's export), Llama / Mistral / Qwen / Gemma, GPT-NeoX / Pythia, OPT.
FINAL_NORM_PATHS = ("transformer.ln_f", "model.norm", "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm")
# A checkpoint folder of a series: step_1000 (Pythia-style downloads), step1000, step-1000 (glassbox exports).
STEP_FOLDER = re.compile(r"^step[-_]?(\d+)$")
# The files a tokenizer is loaded from, one of them at least (fast, SentencePiece, BPE and WordPiece tokenizers).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "merges.txt", "vocab.txt")


@dataclass(frozen=True)
class LensConfig:
    """The part of a model's shape the probe functions read (glassbox's GPTConfig has the same names)."""

    n_layer: int
    n_head: int
    block_size: int | None  # longest input, when the model has a limit


class HookedCausalLM(nn.Module):
    """A transformers causal LM with glassbox's analysis interface. Call it in eval mode.

    Hook points: `blocks.{i}.resid_pre`, `blocks.{i}.resid_post`, `blocks.{i}.attn.pattern`
    [B, H, T, T], `ln_final`, `logits`. Transformers reports the input of every block and, last,
    the final norm's output; the last block's own output (before that norm) is taken from a
    forward hook on the final norm, so `blocks.{n-1}.resid_post` is the raw residual stream as in
    glassbox, whatever the architecture does with its last hidden state.
    """

    def __init__(self, model: nn.Module, final_norm_path: str) -> None:
        super().__init__()
        self.hf = model
        self.final_norm_path = final_norm_path
        config = model.config
        self.config = LensConfig(
            config.num_hidden_layers, config.num_attention_heads, getattr(config, "max_position_embeddings", None)
        )

    @property
    def final_norm(self) -> nn.Module:
        return self.hf.get_submodule(self.final_norm_path)

    @property
    def embedding(self) -> Tensor:
        """The input token embedding [V, d]: what the emergence metrics measure."""
        return self.hf.get_input_embeddings().weight

    def unembed(self, resid: Tensor) -> Tensor:
        """The model's own readout: final norm, then the output embedding (logit soft-capping or
        scaling that some architectures add after it is not applied)."""
        return self.hf.get_output_embeddings()(self.final_norm(resid))

    def run_with_cache(self, idx: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(logits, cache) like glassbox's GPT.run_with_cache; wrap in torch.no_grad() for analysis."""
        limit = self.config.block_size
        if limit is not None and idx.shape[1] > limit:
            raise GlassboxError(f"an input of {idx.shape[1]} tokens is longer than the model's {limit} positions")
        final_norm: dict[str, Tensor] = {}

        def keep(module: nn.Module, args: tuple, output: Tensor) -> None:
            final_norm["in"], final_norm["out"] = args[0], output

        handle = self.final_norm.register_forward_hook(keep)
        try:
            out = self.hf(input_ids=idx, output_hidden_states=True, output_attentions=True)
        finally:
            handle.remove()
        n = self.config.n_layer
        if out.attentions is None or len(out.attentions) != n or len(out.hidden_states) != n + 1:
            raise GlassboxError(
                f"{type(self.hf).__name__} did not return the hidden states and attention patterns "
                f"of its {n} layers; glassbox loads models with attn_implementation='eager' for that"
            )
        hidden = out.hidden_states
        cache = {f"blocks.{i}.resid_pre": hidden[i] for i in range(n)}
        cache |= {f"blocks.{i}.resid_post": hidden[i + 1] for i in range(n - 1)}
        cache[f"blocks.{n - 1}.resid_post"] = final_norm["in"]
        cache["ln_final"] = final_norm["out"]
        cache |= {f"blocks.{i}.attn.pattern": pattern for i, pattern in enumerate(out.attentions)}
        cache["logits"] = out.logits
        return out.logits, {name: tensor.detach() for name, tensor in cache.items()}


def import_transformers():
    # Read when huggingface_hub is first imported: set it before, so no code path may reach the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return require("transformers", "reading a Hugging Face model")


def find_final_norm(model: nn.Module) -> str:
    for path in FINAL_NORM_PATHS:
        try:
            model.get_submodule(path)
            return path
        except AttributeError:
            continue
    raise GlassboxError(
        f"{type(model).__name__} has no final norm at any known place ({', '.join(FINAL_NORM_PATHS)}); "
        "add its path to FINAL_NORM_PATHS in glassbox/interop/hf.py"
    )


def load_causal_lm(folder: Path, device: str = "cpu") -> HookedCausalLM:
    """The causal LM saved in `folder`, in float32 and eval mode, behind glassbox's interface.

    Eager attention: the fused kernels never form the attention matrix that the analysis reads.
    """
    transformers = import_transformers()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=torch.float32, attn_implementation="eager"
        )
    except (OSError, ValueError, KeyError) as err:
        raise GlassboxError(f"could not load a causal language model from {folder}: {err}") from err
    if model.get_output_embeddings() is None:
        raise GlassboxError(f"{type(model).__name__} in {folder} has no output embedding to read the logit lens with")
    return HookedCausalLM(model.to(device).eval(), find_final_norm(model))


def check_model_folders(folders: list[tuple[int | None, Path]]) -> None:
    """Before anything is loaded or written: every checkpoint's weight files whole and of the shapes its
    config.json describes, and tokenizer files beside the last one (the one the suites read)."""
    for _, folder in folders:
        check_weights_fit_config(folder)
    last = folders[-1][1]
    if not any((last / name).exists() for name in TOKENIZER_FILES):
        raise GlassboxError(
            f"{last} has no tokenizer files (any of {', '.join(TOKENIZER_FILES)}): copy the ones saved with the "
            "model beside its config.json"
        )


def check_weights_fit_config(folder: Path) -> None:
    """A GlassboxError naming the file for a weight file cut short or damaged, and the tensors whose shapes
    differ from what config.json builds (transformers would raise, or quietly re-initialise them)."""
    safetensors = require("safetensors", "reading a Hugging Face model")
    saved = {}
    for file in _safetensors_files(folder):
        try:
            with safetensors.safe_open(file, framework="pt") as f:
                names = f.keys()
                saved |= {key: list(f.get_slice(key).get_shape()) for key in names}
        except (safetensors.SafetensorError, OSError) as err:
            raise GlassboxError(f"{file} is damaged or cut short ({err}): copy or download it again") from None
    if not saved:
        return
    transformers = import_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
    except (OSError, ValueError, KeyError) as err:
        raise GlassboxError(f"{folder / 'config.json'} does not describe a causal language model: {err}") from None
    built = {key: list(value.shape) for key, value in model.state_dict().items()}
    prefix = f"{model.base_model_prefix}."
    mismatched = []
    for key, shape in saved.items():
        wanted = built.get(key, built.get(prefix + key))
        if wanted is not None and wanted != shape:
            mismatched.append(f"{key} is {shape} in the weights, {wanted} by config.json")
    if mismatched:
        more = f" and {len(mismatched) - 3} more" if len(mismatched) > 3 else ""
        raise GlassboxError(
            f"{folder / 'config.json'} does not match the weights beside it ({'; '.join(mismatched[:3])}{more}): "
            "use the config.json saved with these weights"
        )


def _safetensors_files(folder: Path) -> list[Path]:
    """The safetensors files transformers reads for a model: model.safetensors, or the shards its index lists."""
    if (folder / "model.safetensors").exists():
        return [folder / "model.safetensors"]
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return []


def load_tokenizer(folder: Path) -> Any:
    try:
        return import_transformers().AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise GlassboxError(
            f"could not load a tokenizer from {folder}: {err}. The folder needs the model's "
            "tokenizer files (tokenizer.json or the like) beside config.json"
        ) from err


def model_folders(path: str | Path | None) -> list[tuple[int | None, Path]]:
    """[(None, path)] for one model, or [(step, folder), ...] in step order for a checkpoint series.

    A series is a folder without its own config.json whose subfolders step_N / stepN / step-N each
    hold one checkpoint (config.json, weights, tokenizer).
    """
    if path is None:
        raise GlassboxError("no model given: hf.path=<a local folder with a Hugging Face model or its checkpoints>")
    path = Path(path)
    if not path.is_dir():
        raise GlassboxError(
            f"hf.path={path} is not a folder. Give a local folder holding config.json and the "
            "weights (e.g. from `huggingface-cli download <model> --local-dir <folder>`), or a "
            "folder of such checkpoints named step_N; nothing is downloaded"
        )
    if (path / "config.json").exists():
        return [(None, path)]
    series: dict[int, Path] = {}
    for folder in sorted(path.iterdir()):
        match = STEP_FOLDER.match(folder.name)
        if match and (folder / "config.json").exists():
            step = int(match.group(1))
            if step in series:
                raise GlassboxError(f"{series[step].name} and {folder.name} in {path} are both step {step}")
            series[step] = folder
    if not series:
        raise GlassboxError(f"{path} holds neither a model (config.json) nor checkpoint folders (step_N/config.json)")
    return sorted(series.items())


def token_strings(tokenizer: Any, size: int) -> list[str]:
    """Each id's token as the tokenizer spells it (Ġ / ▁ mark a leading space in BPE / SentencePiece
    vocabularies); `<id N>` for embedding rows the tokenizer has no token for (padding rows)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(size, len(tokenizer)))))
    tokens = [t if t is not None else f"<id {i}>" for i, t in enumerate(tokens)]
    return tokens + [f"<id {i}>" for i in range(len(tokens), size)]


def token_counts(folder: Path, tokenizer: Any, size: int) -> tuple[Tensor, str]:
    """(counts [size], where they come from) for the frequency-dependent metrics.

    A glassbox export carries its corpus's character counts in vocab.json; they are used when
    its characters have the tokenizer's ids. Any other model gets zeros ("uniform"): every
    token equally frequent, so frequency order falls back to id order.
    """
    path = folder / "vocab.json"
    if not path.exists():
        return torch.zeros(size, dtype=torch.long), "uniform"
    vocab = Vocab.load(path)
    if tokenizer.get_vocab() != vocab.stoi or vocab.size > size:
        raise GlassboxError(
            f"{path} does not match the tokenizer of {folder}: their ids differ. Remove it, or "
            "export the model again with `make export`"
        )
    counts = torch.zeros(size, dtype=torch.long)
    counts[: vocab.size] = torch.tensor(vocab.counts)
    return counts, str(path)
