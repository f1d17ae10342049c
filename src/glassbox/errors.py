"""User-facing errors: one exception type, one exit path.

Anything a user can fix (a missing corpus, a bad override, an unknown character) raises
`GlassboxError` with a message that says what was wrong and what to do. Entry points wrap
their main function in `exits_cleanly`, so the user sees that message and exit code 2,
not a traceback.
"""
from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)

EXIT_USER_ERROR = 2


class GlassboxError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def exits_cleanly(main: F) -> F:
    """Turn a `GlassboxError` raised by `main` into its message on stderr and exit code 2.

    In a Hydra multirun the error is re-raised instead: Hydra records it as that job's failure
    and goes on with the next job, where exiting would end the whole sweep.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except GlassboxError as err:
            if _in_multirun():
                log.error("%s", err)
                raise
            print(f"\nerror: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
