"""Hook-point names: the one place that spells them, in the spirit of TransformerLens' `get_act_name`.

`GPT.run_with_cache` records every activation under one of these names:

    embed, pos_embed                      token and position embedding [B, T, d] (pos_embed: only
                                          pos_encoding learned or sinusoidal add one to the input)
    blocks.{i}.resid_pre                  the residual stream entering block i [B, T, d]
    blocks.{i}.attn.q_rot, k_rot          queries and keys after RoPE's rotation [B, H, T, hd] (rope only)
    blocks.{i}.attn.pattern               attention weights after the causal mask [B, H, T, T]
    blocks.{i}.resid_mid                  after block i's attention, before its MLP
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

_IN_ATTENTION = {"pattern", "q_rot", "k_rot"}  # per-block names that live under blocks.{i}.attn


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
