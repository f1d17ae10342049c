"""User-facing errors: one exception type, one exit code.

Anything a user can fix (a missing corpus, a bad override, an unknown character) raises
`GlassboxError` with a message that says what was wrong and what to do; the command line
(glassbox/command_line.py `exits_cleanly`) turns it into that message and exit code 2.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class GlassboxError(Exception):
    """A problem with the user's input or environment, explained in the message."""
