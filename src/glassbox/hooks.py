"""Hook-point names: the one place that spells them, in the spirit of TransformerLens' `get_act_name`.

`GPT.run_with_cache` records every activation under one of these names, and
`GPT.forward(..., interventions=)` can edit any of them (`GPT.hook_points` lists a model's):

    embed, pos_embed                      token and position embedding [B, T, d] (pos_embed: only
                                          pos_encoding learned or sinusoidal add one to the input)
    blocks.{i}.resid_pre                  the residual stream entering block i [B, T, d]
    blocks.{i}.attn.q_rot, attn.k_rot     queries and keys after RoPE's rotation [B, H, T, hd] (rope only;
                                          k_rot has the n_kv_head key/value heads, as cached)
    blocks.{i}.attn.pattern               attention weights after the causal mask [B, H, T, T]
    blocks.{i}.attn.head_out              each head's output, before c_proj mixes the heads [B, T, H, hd]
    blocks.{i}.attn_out                   what attention adds to the residual stream [B, T, d]
    blocks.{i}.resid_mid                  after block i's attention, before its MLP
    blocks.{i}.mlp_out                    what the MLP adds to the residual stream [B, T, d]
    blocks.{i}.resid_post                 leaving block i
    ln_final                              the final norm's output (LayerNorm or RMSNorm)
    logits                                [B, T, V]
"""

from __future__ import annotations

EMBED = "embed"
POS_EMBED = "pos_embed"
LN_FINAL = "ln_final"
LOGITS = "logits"

STREAM_EMBED = "embed"  # the residual stream's first row, entering block 0 (its label, not a hook point)
STREAM_FINAL = "final"  # its last row, after the final LayerNorm

_IN_ATTENTION = {"q_rot", "k_rot", "pattern", "head_out"}  # per-block names that live under blocks.{i}.attn
# The per-block points as wide as the residual stream [B, T, d]: where a steering vector can be
# added or one prompt's hidden state patched into another's.
RESIDUAL_WIDTH = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")


def block(layer: int) -> str:
    """The prefix of block `layer`'s hook points, `blocks.{layer}`."""
    return f"blocks.{layer}"


def act_name(name: str, layer: int | None = None) -> str:
    """`act_name("resid_post", 2)` -> `blocks.2.resid_post`; `act_name("pattern", 0)` -> `blocks.0.attn.pattern`.

    Names outside the blocks (embed, pos_embed, ln_final, logits) take no layer.
    """
    if layer is None:
        return name
    return f"{block(layer)}.attn.{name}" if name in _IN_ATTENTION else f"{block(layer)}.{name}"


def layer_label(layer: int) -> str:
    """`L0`, `L1`, ...: how block `layer` is named in metric keys, tables and plots."""
    return f"L{layer}"


def residual_stream(n_layer: int) -> dict[str, str]:
    """Layer label -> hook point of the residual stream, from the input to the final norm.

    "embed" is blocks.0.resid_pre (token + position embedding), "L<i>" the stream after block i,
    "final" after the final norm: the rows of the reference article's table. The labels
    follow W&B's key rule, as they are fragments of metric keys (glassbox.metric_keys).
    """
    names = {STREAM_EMBED: act_name("resid_pre", 0)}
    names |= {layer_label(i): act_name("resid_post", i) for i in range(n_layer)}
    names[STREAM_FINAL] = LN_FINAL
    return names


def hook_points(n_layer: int, adds_position: bool, rope: bool) -> list[str]:
    """Every hook point of a model, in the order its forward pass reaches them.

    adds_position: a position vector is added to the input (learned or sinusoidal positions);
    rope: queries and keys are rotated (and recorded after their rotation).
    """
    names = [EMBED] + ([POS_EMBED] if adds_position else [])
    attention = (["q_rot", "k_rot"] if rope else []) + ["pattern", "head_out"]
    for i in range(n_layer):
        names += [
            act_name(point, i) for point in ("resid_pre", *attention, "attn_out", "resid_mid", "mlp_out", "resid_post")
        ]
    return names + [LN_FINAL, LOGITS]
