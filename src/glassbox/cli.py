"""Command-line help shared by the stages' entry points."""
from __future__ import annotations

import re
from collections.abc import Iterable


def quote_prompt_override(arg: str, keys: Iterable[str] = ("prompt",)) -> str:
    """`prompt=悟空道` → `prompt='悟空道'`, so any prompt can be typed as it is.

    Hydra's override grammar accepts only ASCII in unquoted values and gives meaning to
    commas, brackets and `${`; a quoted value is taken literally (after escaping its quotes
    and the backslashes before them). Values the user quoted already are left alone, and so
    is every override whose key is not one of `keys` (the stage's prompt-valued keys).
    """
    key, equals, value = arg.partition("=")
    if key not in keys or not equals or (len(value) > 1 and value[0] == value[-1] and value[0] in "'\""):
        return arg
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"{key}='" + escaped.replace("${", "\\${") + "'"
