"""One snapshot → one folder that transformers, TransformerLens and nanoGPT each load.

glassbox's default model is GPT-2's architecture with nanoGPT's names, so an export only renames
and re-lays the same numbers; nothing is retrained or approximated. The folder holds

    config.json, model.safetensors          transformers.GPT2LMHeadModel
    tokenizer.json, tokenizer_config.json   transformers.AutoTokenizer: one token per character, the
                                            run's own ids
    nanogpt.safetensors, nanogpt_config.json  nanoGPT's GPT and TransformerLens' convert_nanogpt_weights
    vocab.json                              the run's vocabulary with its character counts
    glassbox.json                           where the weights came from (run, step, snapshot, hashes)
    README.md                               how to load it in each tool

What differs between the layouts, and why the logits still agree:
- GPT-2 keeps Linear weights in a Conv1D module, stored transposed ([in, out]); nanoGPT and
  glassbox store nn.Linear's [out, in].
- GPT-2's modules always have biases; glassbox's default has none (bias=false), which is the
  same computation as biases of zero, so zeros are written.
- GPT-2's default activation is gelu_new (the tanh approximation); glassbox uses nn.GELU(), the
  exact erf form, so the config says activation_function="gelu".
- The output matrix is tied to the token embedding in all three, so model.safetensors stores it
  once (transformers re-ties it on load); nanoGPT's state dict names it twice, so
  nanogpt.safetensors holds two copies (safetensors cannot store one tensor under two names).

Nothing is pickled: weights are safetensors, everything else JSON or text, and the folder
appears at once (it is written beside its final name and renamed into place).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from glassbox import fileio
from glassbox.errors import GlassboxError
from glassbox.interop import require
from glassbox.run.layout import advice_for_writing, run_of_snapshot
from glassbox.run.snapshots import Snapshot, check_vocab
from glassbox.text.vocab import Vocab

EXPORT_DIR = "export"
# Model options that change the architecture, with the value GPT-2 (and so this export) has.
# They are read with these defaults, so snapshots from before an option existed export as before.
GPT2_VARIANT = {"pos_encoding": "learned", "norm": "layernorm", "mlp": "gelu"}
LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
NORMS = ("ln_1", "ln_2")


def export_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / EXPORT_DIR / f"step-{step}"


def check_exportable(model_args: Mapping[str, Any]) -> None:
    """Refuse a model that is not GPT-2's architecture: its weights would load into the wrong computation."""
    other = {key: model_args[key] for key, gpt2 in GPT2_VARIANT.items() if model_args.get(key, gpt2) != gpt2}
    if other:
        chosen = ", ".join(f"model.{key}={value}" for key, value in other.items())
        default = ", ".join(f"model.{key}={GPT2_VARIANT[key]}" for key in other)
        raise GlassboxError(
            f"this snapshot's model uses {chosen}; export writes only GPT-2's architecture ({default}), "
            "which transformers' GPT2LMHeadModel and nanoGPT compute. Export a run trained with those options."
        )


def _expected_keys(n_layer: int, bias: bool) -> set[str]:
    """Every weight name of a default glassbox GPT (lm_head.weight is wte.weight, saved under both names)."""
    suffixes = ("weight", "bias") if bias else ("weight",)
    keys = {"wte.weight", "wpe.weight", "lm_head.weight", *(f"ln_f.{s}" for s in suffixes)}
    for i in range(n_layer):
        keys |= {f"blocks.{i}.{module}.{s}" for module in (*NORMS, *LINEARS) for s in suffixes}
    return keys


def _check_keys(state: Mapping[str, Tensor], model_args: Mapping[str, Any]) -> None:
    expected = _expected_keys(model_args["n_layer"], model_args["bias"])
    unknown, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if unknown or missing:
        raise GlassboxError(
            f"the snapshot's weights are not a default glassbox GPT's (unknown: {unknown[:5]}, missing: "
            f"{missing[:5]}); export knows only that architecture"
        )


def gpt2_weights(state: Mapping[str, Tensor], model_args: Mapping[str, Any]) -> dict[str, Tensor]:
    """glassbox weights under GPT2LMHeadModel's names and layouts (see the module docstring)."""
    _check_keys(state, model_args)

    def bias(name: str, size: int) -> Tensor:
        return state.get(f"{name}.bias", torch.zeros(size))

    out = {"transformer.wte.weight": state["wte.weight"], "transformer.wpe.weight": state["wpe.weight"]}
    for i in range(model_args["n_layer"]):
        src, dst = f"blocks.{i}", f"transformer.h.{i}"
        for norm in NORMS:
            weight = state[f"{src}.{norm}.weight"]
            out[f"{dst}.{norm}.weight"] = weight
            out[f"{dst}.{norm}.bias"] = bias(f"{src}.{norm}", weight.numel())
        for linear in LINEARS:
            weight = state[f"{src}.{linear}.weight"]  # [out, in]
            out[f"{dst}.{linear}.weight"] = weight.T  # Conv1D: [in, out]
            out[f"{dst}.{linear}.bias"] = bias(f"{src}.{linear}", weight.shape[0])
    out["transformer.ln_f.weight"] = state["ln_f.weight"]
    out["transformer.ln_f.bias"] = bias("ln_f", state["ln_f.weight"].numel())
    return {name: tensor.detach().float().contiguous() for name, tensor in out.items()}


def nanogpt_name(name: str) -> str:
    """glassbox's weight name → nanoGPT's: the same modules, nanoGPT keeps them under `transformer`."""
    if name.startswith("blocks."):
        return "transformer.h." + name.removeprefix("blocks.")
    return name if name.startswith("lm_head.") else f"transformer.{name}"


def nanogpt_weights(state: Mapping[str, Tensor], model_args: Mapping[str, Any]) -> dict[str, Tensor]:
    """glassbox weights under nanoGPT's names, each its own copy (see the module docstring)."""
    _check_keys(state, model_args)
    return {nanogpt_name(name): tensor.detach().float().clone().contiguous() for name, tensor in state.items()}


def gpt2_config(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """config.json of the matching GPT2LMHeadModel."""
    d = model_args["n_embd"]
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": model_args["vocab_size"],
        "n_positions": model_args["block_size"],
        "n_embd": d,
        "n_layer": model_args["n_layer"],
        "n_head": model_args["n_head"],
        "n_inner": 4 * d,
        "activation_function": "gelu",  # nn.GELU(): exact erf, not GPT-2's tanh approximation
        "layer_norm_epsilon": 1e-5,  # nn.LayerNorm's default
        "resid_pdrop": model_args["dropout"],
        "embd_pdrop": model_args["dropout"],
        "attn_pdrop": model_args["dropout"],
        "scale_attn_weights": True,  # q·kᵀ/√d_head
        "tie_word_embeddings": True,
        # No special tokens: GPT-2's defaults (50256) lie outside a character vocabulary.
        "bos_token_id": None,
        "eos_token_id": None,
    }


def char_tokenizer(vocab: Vocab, block_size: int) -> tuple[str, dict[str, Any]]:
    """(tokenizer.json, tokenizer_config.json) of a tokenizer with glassbox's character ids.

    Every character (newlines and spaces included) is split off as its own piece and looked up
    in a word-level table of the vocabulary. The table has no unknown token on purpose: a
    character the model never saw fails to encode (tokenizers raises "Missing [UNK] token")
    instead of quietly becoming another character's id. Decoding joins the pieces as they are.
    """
    tokenizers = require("tokenizers", "exporting the tokenizer")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab.stoi, unk_token=None))
    # [\s\S] is any one character; "." would skip newlines.
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = tokenizers.decoders.Fuse()
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": block_size,
        "clean_up_tokenization_spaces": False,  # the default would drop the space before "," and "."
    }
    return tokenizer.to_str(pretty=True), config


def safetensors_bytes(tensors: dict[str, Tensor]) -> bytes:
    # format=pt: transformers refuses safetensors files that do not say they hold PyTorch tensors.
    return require("safetensors.torch", "exporting weights").save(tensors, metadata={"format": "pt"})


def export_snapshot(snapshot: Snapshot, vocab: Vocab, dst: Path) -> Path:
    """Write the export folder of one loaded snapshot to `dst` (replacing an older export there)."""
    args = snapshot.model_args
    check_exportable(args)
    check_vocab(snapshot, vocab.hash, "the given vocabulary")
    state = snapshot.weights
    tokenizer_json, tokenizer_config = char_tokenizer(vocab, args["block_size"])
    nanogpt_config = {
        key: args[key] for key in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias")
    }
    provenance = {
        "step": snapshot.step,
        "snapshot": str(snapshot.path),
        "run_dir": str(run_of_snapshot(snapshot.path)),
        "experiment": snapshot.config["name"],
        "corpus": snapshot.config["corpus"]["name"],
        "vocab_hash": vocab.hash,
        "model_args": dict(args),
    }
    with atomic_dir(dst) as tmp:
        fileio.write_json(tmp / "config.json", gpt2_config(args))
        fileio.write_bytes(tmp / "model.safetensors", safetensors_bytes(gpt2_weights(state, args)))
        fileio.write_text(tmp / "tokenizer.json", tokenizer_json)
        fileio.write_json(tmp / "tokenizer_config.json", tokenizer_config)
        fileio.write_bytes(tmp / "nanogpt.safetensors", safetensors_bytes(nanogpt_weights(state, args)))
        fileio.write_json(tmp / "nanogpt_config.json", nanogpt_config)
        vocab.save(tmp / "vocab.json")
        fileio.write_json(tmp / "glassbox.json", provenance)
        fileio.write_text(tmp / "README.md", readme(provenance, nanogpt_config))
    return dst


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` whole.

    A reader sees the old export or the new one, never a folder with half its files: two renames,
    the old folder out of the way first (a rename cannot replace a non-empty folder).
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with fileio.explain_write_errors(path, advice_for_writing(path)):
            tmp.mkdir(parents=True)
        yield tmp
        with fileio.explain_write_errors(path):
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def readme(provenance: dict[str, Any], nanogpt_config: dict[str, Any]) -> str:
    """README.md of an export: what it is and how each tool loads it."""
    c = nanogpt_config
    d_head = c["n_embd"] // c["n_head"]
    return f"""# glassbox export: {provenance["experiment"]}, step {provenance["step"]}

A character-level GPT trained by glassbox on corpus `{provenance["corpus"]}`, exported from
`{provenance["snapshot"]}`. {c["n_layer"]} layers, {c["n_head"]} heads, {c["n_embd"]} dimensions, \
context {c["block_size"]} characters, {c["vocab_size"]} characters in the vocabulary.
The same weights in three layouts; every load below computes the same logits as glassbox.

## transformers

```python
from transformers import AutoTokenizer, GPT2LMHeadModel

model = GPT2LMHeadModel.from_pretrained("path/to/this/folder").eval()
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
ids = tokenizer("some text", return_tensors="pt").input_ids
logits = model(ids).logits
```

The tokenizer gives every character its glassbox id (vocab.json: `itos`, `stoi`), newlines and
spaces included, and adds no special tokens. A character that is not in the vocabulary makes
encoding fail (`Missing [UNK] token from the vocabulary`): the tokenizer has no unknown token, so
an unseen character cannot silently turn into another one. The model reads at most
{c["block_size"]} characters (`n_positions`); longer inputs must be cropped to their end.
Activation `gelu` (exact), biases zero: glassbox's model has none.

## TransformerLens

```python
import json
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_nanogpt_weights

cfg = HookedTransformerConfig(n_layers={c["n_layer"]}, d_model={c["n_embd"]}, n_ctx={c["block_size"]}, \
n_heads={c["n_head"]}, d_head={d_head},
                              d_mlp={4 * c["n_embd"]}, d_vocab={c["vocab_size"]}, act_fn="gelu", \
normalization_type="LN")
model = HookedTransformer(cfg)
state = convert_nanogpt_weights(load_file("path/to/this/folder/nanogpt.safetensors"), cfg)
model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False)
```

Without the folding and centering the activations are glassbox's own; with them the logits
stay the same but the residual stream is transformed.

## nanoGPT

`nanogpt.safetensors` holds nanoGPT's state dict (`transformer.wte`, `transformer.h.{{i}}.…`,
`lm_head`), `nanogpt_config.json` its `GPTConfig`:

```python
import json
from safetensors.torch import load_file
from model import GPT, GPTConfig  # nanoGPT's model.py

model = GPT(GPTConfig(**json.load(open("path/to/this/folder/nanogpt_config.json"))))
model.load_state_dict(load_file("path/to/this/folder/nanogpt.safetensors"))
```

## glassbox

`make inspect-hf EXPERIMENT={provenance["experiment"]} ARGS="hf.path=path/to/this/folder"` runs
glassbox's snapshot-free analysis suites on it; a folder of several exports (`step-N/`) is read as
a checkpoint series. `glassbox.json` records where these weights came from.
"""
