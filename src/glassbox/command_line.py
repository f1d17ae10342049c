"""The stages' command lines: the `glassbox-<stage>` commands and `python -m glassbox.<stage>` alike.

Some values are text a person types as it is: a prompt (悟空道), a file of their own (红楼梦.txt,
"my notes.txt"). Hydra's override grammar accepts only ASCII in unquoted values and gives meaning
to commas, brackets and `${`, so such values are quoted before Hydra reads the command line.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable

LITERAL_KEYS = ("prompt", "corpus.path")  # overrides whose value is taken exactly as typed


def quote_literal(arg: str) -> str:
    """`prompt=悟空道` → `prompt='悟空道'` for the keys in LITERAL_KEYS; any other argument as it is.

    A quoted value is taken literally by Hydra once its quotes and the backslashes before them
    are escaped, and `${` too. Values the user quoted already are left alone.
    """
    key, equals, value = arg.partition("=")
    if key not in LITERAL_KEYS or not equals or (len(value) > 1 and value[0] == value[-1] and value[0] in "'\""):
        return arg
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"{key}='" + escaped.replace("${", "\\${") + "'"


def run(main: Callable[[], None]) -> None:
    """Run a stage's Hydra `main` on this process's command line, literal values quoted."""
    sys.argv = [quote_literal(arg) for arg in sys.argv]
    main()
