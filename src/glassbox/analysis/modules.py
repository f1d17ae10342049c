"""A model's module tree as data: every module, its parameters' shapes and counts, and the totals by kind,
as PyTorch's `print(model)` and `named_parameters()` show them, for glassbox's GPT and any Hugging Face model.

A tied parameter (the output head that is the token embedding) is listed where it appears again but
counted once, where it first appears, as `parameters()` yields it; so the tree's total is the model's
parameter count (`GPT.num_params`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

KINDS = ("embedding", "attention", "mlp", "norm", "head", "other")
ATTENTION_NAMES = ("attn", "attention")
MLP_NAMES = ("mlp", "ffn", "feed_forward")


def parameter_kind(path: str, module: nn.Module) -> str:
    """Which part of a transformer the parameters of `module` (at `path`) belong to: embeddings and norms by the
    module's class, attention and MLP by the name of the block part it sits in, an untied output head by name."""
    name = type(module).__name__.lower()
    parts = path.lower().split(".")
    if isinstance(module, nn.Embedding) or "embedding" in name:
        return "embedding"
    if "norm" in name:
        return "norm"
    if any(word in part for part in parts for word in ATTENTION_NAMES):
        return "attention"
    if any(part in MLP_NAMES for part in parts):
        return "mlp"
    if parts[-1] in ("lm_head", "head", "embed_out"):
        return "head"
    return "other"


def module_tree(model: nn.Module) -> dict[str, Any]:
    """{"class", "total", "totals": {kind: count}, "tree": the root node}; a node is {"name", "class", "total",
    "params": [{"name", "shape", "count", "kind", "tied_to"}], "children": [nodes]}."""
    first_seen: dict[int, str] = {}  # id of a parameter -> where it first appears
    totals = dict.fromkeys(KINDS, 0)

    def node(name: str, path: str, module: nn.Module) -> dict[str, Any]:
        params = []
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{path}.{param_name}" if path else param_name
            tied_to = first_seen.setdefault(id(param), full)
            kind = parameter_kind(path, module)
            row = {"name": param_name, "shape": list(param.shape), "count": param.numel(), "kind": kind}
            params.append(row | {"tied_to": None if tied_to == full else tied_to})
            if tied_to == full:
                totals[kind] += param.numel()
        children = [
            node(child_name, f"{path}.{child_name}" if path else child_name, child)
            for child_name, child in module.named_children()
        ]
        own = sum(p["count"] for p in params if p["tied_to"] is None)
        return {
            "name": name,
            "class": type(module).__name__,
            "total": own + sum(c["total"] for c in children),
            "params": params,
            "children": children,
        }

    root = node("", "", model)
    return {"class": root["class"], "total": root["total"], "totals": totals, "tree": root}
