"""Prompts on the command line: `prompt=悟空道` as typed, quoted for Hydra before it parses them.

Hydra's override grammar accepts only ASCII in unquoted values and gives meaning to commas,
brackets and `${`, so `prompt=悟空道` or `prompt=to be, or not` would be refused or misread. The
stages that take prompts (trace, sample) pass their command line through `quote_prompt_override`
first: a quoted value is taken literally.
"""
from __future__ import annotations

import re

TEXT_KEYS = ("prompt", "prompt_file")  # the whole value is one string
LIST_KEYS = ("prompts",)  # [a,b,c]: each element is one string, split at the commas


def quote(value: str) -> str:
    """`value` as a single-quoted Hydra string: its quotes, the backslashes before them and `${` escaped."""
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return "'" + escaped.replace("${", "\\${") + "'"


def is_quoted(value: str) -> bool:
    return len(value) > 1 and value[0] == value[-1] and value[0] in "'\""


def quote_prompt_override(arg: str) -> str:
    """`prompt=悟空道` → `prompt='悟空道'` and `prompts=[悟空道,行者]` → `prompts=['悟空道','行者']`.

    Values the user quoted already are left alone, and so is a list with any quoted element (a
    prompt holding a comma must be quoted: prompts="['to be, or not',ROMEO:]"). Other arguments
    pass unchanged.
    """
    key, equals, value = arg.partition("=")
    if not equals or is_quoted(value):
        return arg
    is_list = value.startswith("[") and value.endswith("]")
    if key in TEXT_KEYS or (key in LIST_KEYS and not is_list):  # the stage explains that a list was expected
        return f"{key}={quote(value)}"
    if key in LIST_KEYS and not re.search(r"['\"]", value):
        inner = value[1:-1]
        return f"{key}=[{','.join(quote(item) for item in inner.split(','))}]" if inner else arg
    return arg
