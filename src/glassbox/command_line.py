"""The stages' command lines: the `glassbox-<stage>` commands and `python -m glassbox.<stage>` alike.

Entry points wrap their main function in `exits_cleanly`, so the user sees a `GlassboxError`'s message
and exit code 2, not a traceback, and a command that stopped before it wrote anything leaves no empty
directory behind (e.g. no run directory for `make train` to mistake for a run). Ctrl-C is a clean stop
too: exit code 130, one line of what was kept and where, and no half-written folder (a stage that keeps
what it finished says so with `Stopped`; otherwise its fresh folder is removed, a training run's never).

Some values are text a person types as it is: a prompt (悟空道), a file of their own (红楼梦.txt,
"my notes.txt"). Hydra's override grammar accepts only ASCII in unquoted values and gives meaning
to commas, brackets and `${`, so such values are quoted before Hydra reads the command line.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode

from glassbox.config import override_problem
from glassbox.errors import EXIT_USER_ERROR, GlassboxError, Stopped
from glassbox.fileio import is_bare_hydra_dir
from glassbox.run.layout import RUN_STATE

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)

# Overrides whose value is taken exactly as typed: prompts (trace, sample), the source and target
# prompts of `make patch`, the neutral target of `make scope`, a prompt file and a text file of your own.
LITERAL_KEYS = ("prompt", "prompt_file", "source", "target", "neutral", "corpus.path")
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
    """Run a stage's Hydra `main` on this process's command line, literal values quoted.

    An override Hydra refuses (`num_sample=1`, `model=nosuch`, `temperature=(`) is the user's to fix: its
    message and exit code 2, as for every bad input. Hydra raises it to here only with HYDRA_FULL_ERROR set
    (otherwise it prints it and exits 1); a user who set that variable gets Hydra's own report.
    """
    sys.argv = [quote_literal(arg) for arg in sys.argv]
    if os.environ.get("HYDRA_FULL_ERROR"):
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except CompactHydraException as err:
        print(f"\nerror: {override_problem(err)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def exits_cleanly(main: F) -> F:
    """Turn a `GlassboxError` raised by `main` into its message on stderr and exit code 2, and Ctrl-C
    (`Stopped`, or a bare KeyboardInterrupt) into one line of what was kept and its exit code, 130.

    In a Hydra multirun both are re-raised instead: Hydra records that job's failure and calls the
    sweep's callbacks, which list it (the job's directory stays); an error goes on with the next job,
    a stop ends the sweep (sweep.py, `SweepSummary`).
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                raise Stopped(f"stopped by Ctrl-C: {_unfinished_output_dropped()}") from None
        except GlassboxError as err:
            if _in_multirun():
                log.error("%s", err)
                raise
            _remove_bare_output_dir()
            print(f"\nerror: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except Stopped as stop:
            if _in_multirun():
                log.warning("%s", stop)
                raise
            print(f"\n{stop}", file=sys.stderr)
            sys.exit(stop.exit_code)

    return wrapper  # type: ignore[return-value]


@contextmanager
def removed_if_stopped(folder: Path) -> Iterator[Path]:
    """A folder this command fills outside its Hydra directory: Ctrl-C before it is finished removes it."""
    try:
        yield folder
    except KeyboardInterrupt:
        raise Stopped(f"stopped by Ctrl-C: {_removed(folder)}") from None


def _removed(folder: Path) -> str:
    shutil.rmtree(folder, ignore_errors=True)
    return f"nothing kept (removed the unfinished {folder})"


def _unfinished_output_dropped() -> str:
    """Remove this command's fresh Hydra directory, stopped before it was finished; say what is left.

    A training run's directory (it holds run.json) is kept: the same command resumes it. So is a
    sweep job's, which the sweep summary lists.
    """
    if not HydraConfig.initialized() or _in_multirun():
        return "nothing was removed"
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    if output_dir.resolve() == Path.cwd().resolve() or not output_dir.is_dir():
        return "nothing was written"
    if (output_dir / RUN_STATE).exists():
        return f"the run {output_dir} is kept; run the same command again to resume it"
    return _removed(output_dir)


def _remove_bare_output_dir() -> None:
    """Remove this command's Hydra directory if it holds only Hydra's own files (.hydra/, the log), and the
    folders above it left empty (`outputs/hf/<name>/` of a refused inspect-hf), up to the directory run in."""
    if HydraConfig.initialized():
        output_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
        here = Path.cwd().resolve()
        if output_dir != here and is_bare_hydra_dir(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)
            for folder in output_dir.parents:
                if folder == here or folder in here.parents or any(folder.iterdir()):
                    break
                folder.rmdir()


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
