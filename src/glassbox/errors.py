"""User-facing errors: one exception type, one exit path.

Anything a user can fix (a missing corpus, a bad override, an unknown character) raises
`GlassboxError` with a message that says what was wrong and what to do. Entry points wrap
their main function in `exits_cleanly`, so the user sees that message and exit code 2,
not a traceback, and a command that stopped before it wrote anything leaves no empty
directory behind (e.g. no run directory for `make train` to mistake for a run).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)

EXIT_USER_ERROR = 2


class GlassboxError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def exits_cleanly(main: F) -> F:
    """Turn a `GlassboxError` raised by `main` into its message on stderr and exit code 2.

    In a Hydra multirun the error is re-raised instead: Hydra records it as that job's failure
    and goes on with the next job, where exiting would end the whole sweep (and the job's
    directory stays, for the sweep summary to list it as failed).
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except GlassboxError as err:
            if _in_multirun():
                log.error("%s", err)
                raise
            _remove_bare_output_dir()
            print(f"\nerror: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]


def _remove_bare_output_dir() -> None:
    """Remove this command's Hydra directory if it holds only Hydra's own files (.hydra/, the log)."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    from glassbox.fileio import is_bare_hydra_dir  # fileio imports this module

    if HydraConfig.initialized():
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        if output_dir.resolve() != Path.cwd().resolve() and is_bare_hydra_dir(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
