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


def residual_stream(n_layer: int) -> dict[str, str]:
    """Layer label -> hook point of the residual stream, from the input to the final norm.

    "input" is blocks.0.resid_pre (token + position embedding), "blocks.i" the stream after
    block i, "ln_final" after the final norm: the rows of the reference article's table.
    """
    names = {"input": act_name("resid_pre", 0)}
    names |= {block(i): act_name("resid_post", i) for i in range(n_layer)}
    names[LN_FINAL] = LN_FINAL
    return names
