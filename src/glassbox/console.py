"""What the stages' log lines look like on the terminal (conf/hydra/job_logging/glassbox.yaml).

Stages report through `logging`, so the same lines reach the terminal and Hydra's <job>.log in
the run's folder. On the terminal a line goes above the progress bar instead of through it, as
nanoGPT's evals do, and carries no timestamp; the log file keeps those.
"""

from __future__ import annotations

import logging

from tqdm import tqdm


class ConsoleFormatter(logging.Formatter):
    """The message alone; a warning or an error says so first."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return f"{record.levelname.lower()}: {message}" if record.levelno >= logging.WARNING else message


class TqdmHandler(logging.Handler):
    """Writes each record to stdout through tqdm.write, which redraws an open progress bar below it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own rule: a failed log line must not end the program
            self.handleError(record)
