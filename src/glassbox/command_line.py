"""The stages' command lines: the `glassbox-<stage>` commands and `python -m glassbox.<stage>` alike.

Some values are text a person types as it is: a prompt (悟空道), a file of their own (红楼梦.txt,
"my notes.txt"). Hydra's override grammar accepts only ASCII in unquoted values and gives meaning
to commas, brackets and `${`, so such values are quoted before Hydra reads the command line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

# Overrides whose value is taken exactly as typed: prompts (trace, sample), the source and target
# prompts of `make patch`, a prompt file and a text file of your own.
LITERAL_KEYS = ("prompt", "prompt_file", "source", "target", "corpus.path")
LIST_KEYS = ("prompts",)  # [a,b,c]: each element one literal string, split at the commas


def quote(value: str) -> str:
    """`value` as a single-quoted Hydra string: its quotes, the backslashes before them and `${` escaped."""
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return "'" + escaped.replace("${", "\\${") + "'"


def is_quoted(value: str) -> bool:
    return len(value) > 1 and value[0] == value[-1] and value[0] in "'\""


def quote_literal(arg: str) -> str:
    """`prompt=悟空道` → `prompt='悟空道'`, `prompts=[悟空道,行者]` → `prompts=['悟空道','行者']`.

    Only the keys above are touched. Values the user quoted already are left alone, and so is a
    list with any quoted element (a prompt holding a comma must be quoted:
    prompts="['to be, or not',ROMEO:]"). A list key given one value is quoted whole, so the stage
    can explain that a list was expected.
    """
    key, equals, value = arg.partition("=")
    if not equals or is_quoted(value):
        return arg
    is_list = value.startswith("[") and value.endswith("]")
    if key in LITERAL_KEYS or (key in LIST_KEYS and not is_list):
        return f"{key}={quote(value)}"
    if key in LIST_KEYS and not re.search(r"['\"]", value):
        inner = value[1:-1]
        return f"{key}=[{','.join(quote(item) for item in inner.split(','))}]" if inner else arg
    return arg


def run(main: Callable[[], None]) -> None:
    """Run a stage's Hydra `main` on this process's command line, literal values quoted."""
    sys.argv = [quote_literal(arg) for arg in sys.argv]
    main()
