"""What a valid configuration is: every key the stages read, its type and its range, checked before anything runs.

Hydra composes the config from conf/; the pydantic models of config/groups.py (one per config group) and
config/stages.py (one per stage: its own keys beside the groups) say which composed configs make sense. A bad
override (`train.batch_size=0`, `alphas=[1,a]`, `model.n_embd=33` with two heads) then stops the command with
one message that lists every problem, before any run directory, `latest` link or W&B run exists, instead of a
traceback from deep inside a stage.

Two ways in:
- `CheckConfig`, a Hydra callback (conf/hydra/default.yaml), validates a command's config against the schema
  of its stage, the one named like the command's config file (Hydra's job.config_name: `steer` for
  conf/steer.yaml), before Hydra creates the command's directory, and checks that directory can be created.
- `validate(cfg, stage)`, called by a stage, returns the typed config the stage reads; `training=True` (the
  train stage, sweep jobs included) adds what only training needs: the device asked for exists on this machine.
"""

from __future__ import annotations

import difflib
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, InterpolationKeyError, OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from glassbox.config.stages import COMMON_GROUPS, STAGES, Stage
from glassbox.errors import EXIT_USER_ERROR, GlassboxError
from glassbox.fileio import explain_write_errors
from glassbox.run.layout import advice_for_writing

Schema = TypeVar("Schema", bound=BaseModel)


def validate(cfg: DictConfig, stage: str, *, training: bool = False) -> Stage:
    """`cfg` as the typed config of `stage` (a key of config.stages.STAGES), or a GlassboxError listing every
    key that is missing, of the wrong type or out of range.

    `training` adds the checks of the machine: the device asked for must exist.
    """
    keys = [k for k in cfg if k != "hydra"]  # Hydra's own node is Hydra's to check, and resolves only in a job
    try:
        data = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    except InterpolationKeyError:
        raise GlassboxError(
            "the config is not valid, so nothing was run:\n" + "\n".join(_unset_defaults(cfg, keys))
        ) from None
    except OmegaConfBaseException as err:
        raise GlassboxError(f"the config does not resolve: {err}") from None
    refuse_unknown_keys(data, stage)
    return check(STAGES[stage], data, training=training)


def _unset_defaults(cfg: DictConfig, keys: list[str]) -> list[str]:
    """A line for each key whose default `${...}` names a key this config lacks (patch's
    source=${corpus.steering.patch.source} on a corpus without a steering block): what to give instead."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    lines = []
    for key in keys:
        try:
            node = cfg[key]
            if OmegaConf.is_config(node):
                OmegaConf.to_container(node, resolve=True)
        except InterpolationKeyError as err:
            default = functools.reduce(
                lambda d, k: d.get(k, {}) if isinstance(d, dict) else {}, err.full_key.split("."), raw
            )
            named = f", {default}," if isinstance(default, str) else ""
            lines.append(
                f"  {err.full_key}: not set: its default{named} names a key that corpus '{cfg.corpus.name}' does not "
                f"have; give {err.full_key}=<value>"
            )
    return lines


def refuse_unknown_keys(data: dict[str, Any], stage: str) -> None:
    """A key the stage does not read (`+num_sample=1`, the fix Hydra suggests for a typo) is refused, not ignored."""
    known = [*STAGES[stage].model_fields, *COMMON_GROUPS]
    unknown = [key for key in data if key not in known]
    if unknown:
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            lines.append(f"  {key}: not a key of this stage{f' (did you mean {close[0]}?)' if close else ''}")
        raise GlassboxError(
            "the config is not valid, so nothing was run:\n" + "\n".join(lines) + "\n"
            f"The keys it reads: {', '.join(STAGES[stage].model_fields)} (`--help` says what each does)."
        )


def check(schema: type[Schema], data: dict[str, Any], *, where: str = "", training: bool = False) -> Schema:
    """`data` as `schema`, or a GlassboxError listing every problem, each key named from the config's root
    (`where`: the section `data` was taken from, e.g. analysis.claims of a run's saved config)."""
    try:
        return schema.model_validate(data, context={"training": training})
    except ValidationError as err:
        problems = "\n".join(f"  {_problem(e, where)}" for e in err.errors())
        raise GlassboxError(
            f"the config is not valid, so nothing was run:\n{problems}\n"
            "Fix these overrides (or the config files they come from)."
        ) from None


def _problem(error: dict[str, Any], where: str) -> str:
    """One line of the message: `train.batch_size=0: Input should be greater than 0`."""
    key = ".".join([where] * bool(where) + [str(part) for part in error["loc"]])
    message = error["msg"].removeprefix("Value error, ")
    if not key:  # a rule of the whole stage (sample: some prompt)
        return message
    if error["type"] == "missing":
        return f"{key}: missing"
    if isinstance(error["input"], dict):  # a whole group's rule (e.g. model: n_embd divisible by n_head)
        return f"{key}: {message}"
    return f"{key}={error['input']!r}: {message}"


def check_writable(directory: Path) -> None:
    """Raise a GlassboxError unless a folder can be created in `directory` (made first if need be)."""
    with explain_write_errors(directory, advice_for_writing(directory)):
        directory.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(dir=directory, prefix=".write-test-")).rmdir()


class CheckConfig(Callback):
    """Hydra callback: a run's config, or every job's config of a sweep, is valid and the directory's parent
    writable, before Hydra makes the directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config, config.hydra.job.config_name)
            check_writable(Path(config.hydra.run.dir).parent)
        except GlassboxError as err:
            print(f"\nerror: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """`seed=1,x` stops here with the bad job named, instead of a sweep directory of failed jobs."""
        jobs = sweep_jobs(config)
        loader = GlobalHydra.instance().config_loader()
        try:
            refuse_multirun_of(config.hydra.job.config_name)
            refuse_repeated_jobs(jobs)
            for number, overrides in enumerate(jobs):
                try:
                    validate(loader.load_sweep_config(config, overrides), config.hydra.job.config_name)
                except (GlassboxError, CompactHydraException) as err:
                    problem = err if isinstance(err, GlassboxError) else override_problem(err)
                    raise GlassboxError(f"job {number} of {len(jobs)} ({' '.join(overrides)}): {problem}") from None
            check_writable(Path(config.hydra.sweep.dir).parent)
        except (GlassboxError, CompactHydraException) as err:
            # here, before the sweeper writes multirun.yaml (and meets the same error again, said twice)
            print(f"\nerror: {err if isinstance(err, GlassboxError) else override_problem(err)}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)


def override_problem(err: CompactHydraException) -> str:
    """Hydra's refusal of an override (a key the config lacks, a group option that does not exist, a value its
    grammar cannot read) in one message; for a mistyped key, the keys beside it that come close, not Hydra's
    advice to add it with `+` (which `refuse_unknown_keys` then refuses)."""
    cause = err.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and isinstance(cause.parent_node, DictConfig):
        key = cause.full_key
        close = difflib.get_close_matches(str(cause.key), [str(k) for k in cause.parent_node], n=1)
        guess = f" (did you mean {key.rpartition('.')[0] + '.' * ('.' in key) + close[0]}?)" if close else ""
        return f"{key} is not a key of this config{guess}; `--help` lists the keys each stage reads"
    return "\n".join([str(err), *([str(cause)] if isinstance(cause, OmegaConfBaseException) else [])])


def refuse_multirun_of(stage: str) -> None:
    """Only training sweeps (`make sweep`, `make replicate`). Another stage under --multirun would put its output
    in a sweep folder instead of where its next stage and `make explore` look (an analysis not in its run)."""
    if stage != "train":
        raise GlassboxError(
            f"--multirun (-m) runs only train (make sweep, make replicate); the {stage} stage runs once per command: "
            "drop -m and run it once per setting (several prompts: prompts=[...]; every snapshot: step=all where "
            "the stage has it)"
        )


def refuse_repeated_jobs(jobs: list[list[str]]) -> None:
    """`make replicate SEEDS=1,1`: a job run twice would count as two seeds, or two configurations, agreeing."""
    first: dict[frozenset[str], int] = {}
    for number, overrides in enumerate(jobs):
        earlier = first.setdefault(frozenset(overrides), number)
        if earlier != number:
            raise GlassboxError(
                f"job {number} ({' '.join(overrides)}) repeats job {earlier}: a sweep runs each configuration "
                "once, so give each value once (e.g. SEEDS=1,2,3)"
            )


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper will expand them (none for another sweeper, e.g. Optuna's:
    its jobs are known only while it runs)."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return []
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader()).parse_overrides(arguments)
    (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return jobs
