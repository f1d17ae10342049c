"""A model's module tree (glassbox/analysis/modules.py) as text: the tree at a terminal and in a code block of
report.md, like PyTorch's `print(model)` with each parameter's shape and count, and the totals by kind."""

from __future__ import annotations

from typing import Any

from glassbox.report.markdown import table

KIND_NAMES = {
    "embedding": "embeddings (token, position)",
    "attention": "attention",
    "mlp": "MLP",
    "norm": "norms",
    "head": "output head (untied)",
    "other": "other",
}


def _param_line(param: dict[str, Any]) -> str:
    shape = "[" + ", ".join(map(str, param["shape"])) + "]"
    if param["tied_to"]:
        return f"{param['name']} {shape}  tied to {param['tied_to']} (counted there)"
    return f"{param['name']} {shape}  {param['count']:,}"


def _lines(node: dict[str, Any], prefix: str) -> list[str]:
    """The node's parameters and children under it, drawn with ├─ └─ │."""
    items = [("param", p) for p in node["params"]] + [("child", c) for c in node["children"]]
    lines = []
    for number, (what, item) in enumerate(items):
        last = number == len(items) - 1
        branch, below = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if what == "param":
            lines.append(prefix + branch + _param_line(item))
        else:
            lines.append(f"{prefix}{branch}{item['name']}: {item['class']}  {item['total']:,}")
            lines += _lines(item, prefix + below)
    return lines


def tree_text(modules: dict[str, Any]) -> str:
    """The whole tree, the root first with the model's parameter count."""
    return "\n".join([f"{modules['class']}  {modules['total']:,} parameters", *_lines(modules["tree"], "")])


def totals_rows(modules: dict[str, Any]) -> list[list[str]]:
    total = modules["total"]
    rows = [
        [KIND_NAMES[kind], f"{count:,}", f"{count / total:.1%}"] for kind, count in modules["totals"].items() if count
    ]
    return rows + [["all (a tied head counted once)", f"{total:,}", "100.0%"]]


def terminal(modules: dict[str, Any]) -> str:
    """The tree, then the totals by kind as aligned lines, for a terminal."""
    totals = [f"  {kind:<32} {count:>14} {share:>7}" for kind, count, share in totals_rows(modules)]
    return "\n".join([tree_text(modules), "", "parameters by kind:", *totals])


def render(modules: dict[str, Any], title: str) -> str:
    """The report.md section: the tree in a code block, then the totals as a table."""
    return (
        f"## {title}\n\n```\n{tree_text(modules)}\n```\n\nParameters by kind:\n\n"
        + table(["kind", "parameters", "share"], totals_rows(modules))
        + "\n"
    )
