"""User-facing errors: one exception type, one exit code.

Anything a user can fix (a missing corpus, a bad override, an unknown character) raises
`GlassboxError` with a message that says what was wrong and what to do; the command line
(glassbox/command_line.py `exits_cleanly`) turns it into that message and exit code 2. Ctrl-C
ends a command as `Stopped`: one line of what was kept and where, exit code 130.
"""

from __future__ import annotations

import signal

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports a command stopped by Ctrl-C


class GlassboxError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class Stopped(Exception):
    """A command stopped cleanly by Ctrl-C (or SIGTERM); the message says what was kept and where."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
