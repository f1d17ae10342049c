"""One snapshot → one folder that transformers (and, for GPT-2's architecture, TransformerLens and
nanoGPT) load.

glassbox's default model is GPT-2's architecture with nanoGPT's names, and `model=llama-style`
(RoPE, RMSNorm, SwiGLU, any model.n_kv_head) is Llama's, so an export only renames and re-lays the
same numbers; nothing is retrained or approximated. Which models export as which class:

    pos_encoding=learned, norm=layernorm, mlp=gelu, n_kv_head = n_head  transformers.GPT2LMHeadModel
    pos_encoding=rope, norm=rmsnorm, mlp=swiglu (any n_kv_head)        transformers.LlamaForCausalLM

Every other mix (sinusoidal or no positions, one modern part without the others, GPT-2 with shared
key/value heads) is refused: no transformers class computes it. The folder holds

    config.json, model.safetensors          transformers.GPT2LMHeadModel or LlamaForCausalLM
    tokenizer.json, tokenizer_config.json   transformers.AutoTokenizer: one token per character, the
                                            run's own ids
    nanogpt.safetensors, nanogpt_config.json  nanoGPT's GPT and TransformerLens' convert_nanogpt_weights
                                            (GPT-2's architecture only)
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

and for Llama:
- Rotary pairs: glassbox turns each pair of neighbouring dimensions (2i, 2i+1) of a head by angle
  i; Llama's rotate_half turns dimension i with i + head_dim/2. Permuting the rows of q_proj and
  k_proj within each head (2i -> i, 2i+1 -> i + head_dim/2) makes Llama rotate the same pairs by
  the same angles, and q·k is unchanged by a permutation applied to both. v and o are untouched.
- c_attn holds q, k and v (n_kv_head heads each for k and v) in one matrix: split into q_proj,
  k_proj, v_proj. SwiGLU's c_gate, c_fc and c_proj are gate_proj, up_proj and down_proj.
- RMSNorm's epsilon (1e-5) and RoPE's base (10000) are written into config.json; grouped query
  heads share key/value heads in the same order (query head h reads h // (n_head / n_kv_head)).

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
from glassbox.model import ANGLE_BASE, RMSNORM_EPS, describe_heads, swiglu_hidden_size
from glassbox.run.layout import advice_for_writing, run_of_snapshot
from glassbox.run.snapshots import Snapshot, check_vocab
from glassbox.text.vocab import Vocab

EXPORT_DIR = "export"
GPT2, LLAMA = "GPT2LMHeadModel", "LlamaForCausalLM"
# The model options that change the architecture, as each exported class has them. They are read with
# GPT-2's values as defaults, so snapshots from before an option existed export as before.
ARCHITECTURES = {
    GPT2: {"pos_encoding": "learned", "norm": "layernorm", "mlp": "gelu"},
    LLAMA: {"pos_encoding": "rope", "norm": "rmsnorm", "mlp": "swiglu"},
}
LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
NORMS = ("ln_1", "ln_2")


def export_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / EXPORT_DIR / f"step-{step}"


def export_class(model_args: Mapping[str, Any]) -> str:
    """The transformers class that computes this model (GPT2LMHeadModel or LlamaForCausalLM); a
    GlassboxError for any other model: its weights would load into the wrong computation."""
    options = {key: model_args.get(key, gpt2) for key, gpt2 in ARCHITECTURES[GPT2].items()}
    name = next((name for name, architecture in ARCHITECTURES.items() if options == architecture), None)
    if name is None:
        chosen = ", ".join(f"model.{key}={value}" for key, value in options.items())
        exportable = " or ".join(
            f"{', '.join(f'model.{key}={value}' for key, value in architecture.items())} ({name})"
            for name, architecture in ARCHITECTURES.items()
        )
        raise GlassboxError(
            f"this snapshot's model uses {chosen}; export writes {exportable}, the models transformers computes. "
            "Export a run trained with one of those (model=seed or model=llama-style)."
        )
    kv_heads = model_args.get("n_kv_head") or model_args.get("n_head")
    if name == GPT2 and kv_heads != model_args.get("n_head"):
        raise GlassboxError(
            f"this snapshot's model shares key/value heads (model.n_kv_head={kv_heads}, n_head="
            f"{model_args['n_head']}), which GPT-2 cannot: only the llama-style model (model=llama-style) "
            "exports with model.n_kv_head, as LlamaForCausalLM"
        )
    return name


def _expected_keys(model_args: Mapping[str, Any]) -> set[str]:
    """Every weight name of a glassbox GPT of an exportable architecture (lm_head.weight is wte.weight,
    saved under both names). RMSNorm has no bias, whatever model.bias says."""
    suffixes = ("weight", "bias") if model_args["bias"] else ("weight",)
    llama = model_args.get("norm") == "rmsnorm"
    norm_suffixes = ("weight",) if llama else suffixes
    linears = (*LINEARS, "mlp.c_gate") if llama else LINEARS
    keys = {"wte.weight", "lm_head.weight", *(f"ln_f.{s}" for s in norm_suffixes)}
    if not llama:
        keys.add("wpe.weight")
    for i in range(model_args["n_layer"]):
        keys |= {f"blocks.{i}.{norm}.{s}" for norm in NORMS for s in norm_suffixes}
        keys |= {f"blocks.{i}.{linear}.{s}" for linear in linears for s in suffixes}
    return keys


def _check_keys(state: Mapping[str, Tensor], model_args: Mapping[str, Any]) -> None:
    expected = _expected_keys(model_args)
    unknown, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if unknown or missing:
        raise GlassboxError(
            f"the snapshot's weights are not those of the glassbox GPT its model_args describe (unknown: "
            f"{unknown[:5]}, missing: {missing[:5]}); export knows only the default and llama-style models"
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


def rotate_half_order(rows: Tensor, head_dim: int) -> Tensor:
    """q or k projection rows (weight [heads·hd, d] or bias [heads·hd]) reordered within each head from
    glassbox's rotary pairs (2i, 2i+1) to Llama's (i, i + hd/2): 0, 2, 4, …, 1, 3, 5, …"""
    per_head = rows.reshape(-1, head_dim // 2, 2, *rows.shape[1:])  # [heads, hd/2, pair, ...]
    return per_head.transpose(1, 2).reshape(rows.shape)


def llama_weights(state: Mapping[str, Tensor], model_args: Mapping[str, Any]) -> dict[str, Tensor]:
    """llama-style glassbox weights under LlamaForCausalLM's names (see the module docstring)."""
    _check_keys(state, model_args)
    d, head_dim = model_args["n_embd"], model_args["n_embd"] // model_args["n_head"]
    kv_width = (model_args["n_kv_head"] or model_args["n_head"]) * head_dim
    out = {"model.embed_tokens.weight": state["wte.weight"], "model.norm.weight": state["ln_f.weight"]}
    for i in range(model_args["n_layer"]):
        src, dst = f"blocks.{i}", f"model.layers.{i}"
        out[f"{dst}.input_layernorm.weight"] = state[f"{src}.ln_1.weight"]
        out[f"{dst}.post_attention_layernorm.weight"] = state[f"{src}.ln_2.weight"]
        for suffix in ("weight", "bias") if model_args["bias"] else ("weight",):
            q, k, v = state[f"{src}.attn.c_attn.{suffix}"].split([d, kv_width, kv_width])
            out[f"{dst}.self_attn.q_proj.{suffix}"] = rotate_half_order(q, head_dim)
            out[f"{dst}.self_attn.k_proj.{suffix}"] = rotate_half_order(k, head_dim)
            out[f"{dst}.self_attn.v_proj.{suffix}"] = v
            out[f"{dst}.self_attn.o_proj.{suffix}"] = state[f"{src}.attn.c_proj.{suffix}"]
            out[f"{dst}.mlp.gate_proj.{suffix}"] = state[f"{src}.mlp.c_gate.{suffix}"]
            out[f"{dst}.mlp.up_proj.{suffix}"] = state[f"{src}.mlp.c_fc.{suffix}"]
            out[f"{dst}.mlp.down_proj.{suffix}"] = state[f"{src}.mlp.c_proj.{suffix}"]
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


def llama_config(model_args: Mapping[str, Any]) -> dict[str, Any]:
    """config.json of the matching LlamaForCausalLM."""
    d, n_head = model_args["n_embd"], model_args["n_head"]
    return {
        "architectures": [LLAMA],
        "model_type": "llama",
        "vocab_size": model_args["vocab_size"],
        "max_position_embeddings": model_args["block_size"],
        "hidden_size": d,
        "intermediate_size": swiglu_hidden_size(d),
        "num_hidden_layers": model_args["n_layer"],
        "num_attention_heads": n_head,
        "num_key_value_heads": model_args["n_kv_head"] or n_head,
        "head_dim": d // n_head,
        "hidden_act": "silu",  # SwiGLU's gate
        "rms_norm_eps": RMSNORM_EPS,
        "rope_theta": float(ANGLE_BASE),  # transformers 5 reads it into rope_parameters
        "attention_bias": model_args["bias"],
        "mlp_bias": model_args["bias"],
        "attention_dropout": model_args["dropout"],
        "tie_word_embeddings": True,
        # No special tokens: Llama's defaults (1 and 2) are characters of the vocabulary here.
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
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
    hf_class = export_class(args)
    check_vocab(snapshot, vocab.hash, "the given vocabulary")
    state = snapshot.weights
    tokenizer_json, tokenizer_config = char_tokenizer(vocab, args["block_size"])
    nanogpt_config = {
        key: args[key] for key in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias")
    }
    provenance = {
        "class": hf_class,
        "step": snapshot.step,
        "snapshot": str(snapshot.path),
        "run_dir": str(run_of_snapshot(snapshot.path)),
        "experiment": snapshot.config["name"],
        "corpus": snapshot.config["corpus"]["name"],
        "vocab_hash": vocab.hash,
        "model_args": dict(args),
    }
    llama = hf_class == LLAMA
    with atomic_dir(dst) as tmp:
        fileio.write_json(tmp / "config.json", llama_config(args) if llama else gpt2_config(args))
        weights = llama_weights(state, args) if llama else gpt2_weights(state, args)
        fileio.write_bytes(tmp / "model.safetensors", safetensors_bytes(weights))
        fileio.write_text(tmp / "tokenizer.json", tokenizer_json)
        fileio.write_json(tmp / "tokenizer_config.json", tokenizer_config)
        if not llama:  # nanoGPT and TransformerLens' converter know GPT-2's architecture only
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
    """README.md of an export: what it is, how each tool loads it, and which glassbox models export."""
    c, hf_class = provenance["model_args"], provenance["class"]
    heads = describe_heads(c["n_head"], c["n_kv_head"])
    layouts = "The same weights in three layouts" if hf_class == GPT2 else "The weights"
    return f"""# glassbox export: {provenance["experiment"]}, step {provenance["step"]}

A character-level GPT trained by glassbox on corpus `{provenance["corpus"]}`, exported from
`{provenance["snapshot"]}`. {c["n_layer"]} layers, {heads}, {c["n_embd"]} dimensions, \
context {c["block_size"]} characters, {c["vocab_size"]} characters in the vocabulary.
{layouts} as `transformers.{hf_class}`; every load below computes the same logits as glassbox.

## transformers

```python
from transformers import AutoTokenizer, {hf_class}

model = {hf_class}.from_pretrained("path/to/this/folder").eval()
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
ids = tokenizer("some text", return_tensors="pt").input_ids
logits = model(ids).logits
```

The tokenizer gives every character its glassbox id (vocab.json: `itos`, `stoi`), newlines and
spaces included, and adds no special tokens. A character that is not in the vocabulary makes
encoding fail (`Missing [UNK] token from the vocabulary`): the tokenizer has no unknown token, so
an unseen character cannot silently turn into another one. The model reads at most
{c["block_size"]} characters; longer inputs must be cropped to their end.
{_gpt2_sections(nanogpt_config) if hf_class == GPT2 else LLAMA_NOTES}
## glassbox

`make inspect-hf EXPERIMENT={provenance["experiment"]} ARGS="hf.path=path/to/this/folder"` runs
glassbox's snapshot-free analysis suites on it; a folder of several exports (`step-N/`) is read as
a checkpoint series. `glassbox.json` records where these weights came from.

## Which glassbox models export

- the default (`model.pos_encoding=learned`, `norm=layernorm`, `mlp=gelu`, `n_kv_head` = `n_head`):
  `GPT2LMHeadModel`, plus nanoGPT's and TransformerLens' layout;
- `model=llama-style` (`pos_encoding=rope`, `norm=rmsnorm`, `mlp=swiglu`, any `n_kv_head`):
  `LlamaForCausalLM`.

`make export` refuses every other mix (sinusoidal or no positions, one modern part without the
others, GPT-2 with shared key/value heads): no transformers class computes it.
"""


LLAMA_NOTES = f"""
Activation `silu` (SwiGLU's gate), RMSNorm with epsilon {RMSNORM_EPS:g}, rotary positions with base {ANGLE_BASE},
`num_key_value_heads` = glassbox's `model.n_kv_head`, the output matrix tied to the embedding.
glassbox rotates neighbouring dimensions (2i, 2i+1) of each head together, Llama dimensions i and
i + head_dim/2: the rows of `q_proj` and `k_proj` are reordered within each head to match, which
leaves every attention score as it was (hook points read on the transformers side see q and k in
that order).
"""


def _gpt2_sections(c: dict[str, Any]) -> str:
    """The GPT-2 export's notes and its TransformerLens and nanoGPT sections."""
    d_head = c["n_embd"] // c["n_head"]
    return f"""Activation `gelu` (exact), biases zero where glassbox's model has none.

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
"""
