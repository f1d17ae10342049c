"""`make sample` on a tiny real run: prompts in every form, the samplers, the speeds, and every bad value refused."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch

from glassbox.command_line import quote_literal
from glassbox.errors import EXIT_USER_ERROR, GlassboxError
from glassbox.generation import generate
from glassbox.prepare import prepare
from glassbox.run.layout import snapshot_path
from glassbox.run.snapshots import load_snapshot
from glassbox.sample import sample
from glassbox.train import train
from helpers import project_with_corpus, run_stage, stage_config

TINY = ["experiment=tiny", "train.max_iters=16", "analysis.at_snapshots=false"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project with a 16-step tiny run on tiny-shakespeare (snapshots 0, 1, 2, 4, 8, 16), outputs/tiny/latest."""
    root = project_with_corpus(tmp_path_factory.mktemp("sample"))
    prepare(stage_cfg("prepare", root))
    train(stage_cfg("train", root), root / "outputs" / "tiny" / "run")
    return root


def stage_cfg(config_name: str, root: Path, *overrides: str):
    """A stage's config as its command line composes it (prompts quoted as the entry point quotes them)."""
    return stage_config(config_name, root, *TINY, *(quote_literal(arg) for arg in overrides))


def sample_cfg(root: Path, *overrides: str):
    return stage_cfg("sample", root, *overrides)


def latest_model(root: Path):
    snapshot = load_snapshot(snapshot_path((root / "outputs" / "tiny" / "latest").resolve(), 16))
    return snapshot.model(), snapshot.vocab()


@pytest.mark.slow
def test_make_sample_prints_samples_and_the_speeds(root):
    done = run_stage(
        "sample", [*TINY, "prompts=[ROMEO:,JULIET:]", "num_samples=2", "max_new_tokens=40"], root, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "step_0000016.pt (step 16)" in out and "pos_encoding=learned" in out
    assert "2 prompt(s): 'ROMEO:', 'JULIET:'" in out  # as parsed, before sampling
    written = json.loads(next((root / "outputs" / "tiny" / "samples").glob("*/samples.json")).read_text())
    assert [p["prompt"] for p in written["prompts"]] == ["ROMEO:", "JULIET:"]
    for prompt in written["prompts"]:
        assert len(prompt["samples"]) == 2
        for text in prompt["samples"]:
            assert text.startswith(prompt["prompt"]) and len(text) == len(prompt["prompt"]) + 40
            assert text in out
    speed = written["speed"]
    # prefill: each prompt once per sample; decode: 39 steps after the first, per sample and prompt
    assert speed["prefill_tokens"] == 2 * len("ROMEO:") + 2 * len("JULIET:")
    assert speed["decode_tokens"] == 2 * 2 * 39 and speed["decode_steps"] == 2 * 39
    # decode steps once the cache holds block_size (32) tokens re-encode the window
    assert speed["re_encoded_steps"] == (len("ROMEO:") + 40 - 1 - 32) + (len("JULIET:") + 40 - 1 - 32)
    assert re.search(r"prefill: 26 prompt tokens in [\d.]+ ms = [\d,]+ tokens/s", out)
    assert re.search(r"decode:  156 tokens \(78 steps × 2 samples\) in [\d.]+ s = [\d,]+ tokens/s", out)

    (log,) = (root / "outputs" / "tiny" / "samples").glob("*/sample.log")  # once always empty: print, not logging
    assert all(text in log.read_text(encoding="utf-8") for text in written["prompts"][1]["samples"])
    assert f"wrote {log.parent / 'samples.json'} (the samples and speeds) and {log}" in out


def test_the_same_seed_draws_the_same_text_and_another_seed_other_text(root, tmp_path):
    first = sample(sample_cfg(root, "prompt=ROMEO:", "max_new_tokens=30"), tmp_path)
    again = sample(sample_cfg(root, "prompt=ROMEO:", "max_new_tokens=30"), tmp_path)
    other = sample(sample_cfg(root, "prompt=ROMEO:", "max_new_tokens=30", "seed=7"), tmp_path)
    assert first["prompts"] == again["prompts"] != other["prompts"]
    assert first["settings"]["num_samples"] == 3 and len(set(first["prompts"][0]["samples"])) == 3


@pytest.mark.parametrize("use_cache", ["true", "false"])
def test_greedy_is_generate_at_temperature_zero_with_and_without_the_cache(root, tmp_path, use_cache):
    model, vocab = latest_model(root)
    expected = vocab.decode(generate(model, torch.tensor([vocab.encode("ROMEO:")]), 50, temperature=0.0)[0])
    for how in (["sampler=greedy", "top_k=3", "top_p=0.5"], ["temperature=0"]):
        written = sample(
            sample_cfg(root, "prompt=ROMEO:", "max_new_tokens=50", "num_samples=2", f"use_cache={use_cache}", *how),
            tmp_path,
        )
        # drawn once: a second greedy sample would be the same text (once computed and printed num_samples times)
        assert written["prompts"][0]["samples"] == [expected] and written["settings"]["num_samples"] == 1
        assert written["speed"]["prefill_tokens"] == len("ROMEO:")


def test_a_prompt_file_and_a_prompt_longer_than_the_block(root, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    long_prompt = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (tmp_path / "start.txt").write_text(long_prompt, encoding="utf-8")
    written = sample(sample_cfg(root, f"prompt_file={tmp_path / 'start.txt'}", "max_new_tokens=5"), tmp_path)
    assert [s[: len(long_prompt)] for s in written["prompts"][0]["samples"]] == [long_prompt] * 3
    assert written["speed"]["prefill_tokens"] == 3 * 32  # the model reads the last block_size characters
    assert f"the prompt has {len(long_prompt)} characters; the model reads its last 32" in caplog.text


def test_without_a_prompt_the_experiments_probe_prompt_is_used(root, tmp_path):
    written = sample(sample_cfg(root, "max_new_tokens=1", "num_samples=1"), tmp_path)
    assert written["prompts"][0]["prompt"] == "ROMEO:"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["temperature=-0.5"], "temperature=-0.5: Input should be greater than or equal to 0"),
        (["top_p=0"], "top_p=0: Input should be greater than 0"),
        (["top_p=1.5"], "top_p=1.5: Input should be less than or equal to 1"),
        (["top_k=0"], "top_k=0: Input should be greater than 0"),
        (["max_new_tokens=-1"], "max_new_tokens=-1: Input should be greater than or equal to 0"),
        (["num_samples=0"], "num_samples=0: Input should be greater than 0"),
        (["sampler=beam"], "sampler='beam': Input should be 'sample' or 'greedy'"),
        (["prompt=ROMEO\u00e9"], "the prompt ('ROMEO\u00e9'): 1 character(s) are not in the vocabulary: 'é' (U+00E9)"),
        (["prompts=[ROMEO:,悟空]"], "prompt 2 ('悟空'): 2 character(s) are not in the vocabulary"),
        (["prompt="], "the prompt is empty"),
        (["prompts=[ROMEO:,'']"], "prompt 2 is empty"),
        (["prompts=[]"], "prompts=[]: give a list of one or more prompts"),
        (["prompt=ROMEO:", "prompt_file=x.txt"], "give the prompt one way, not prompt= and prompt_file="),
        (["prompt_file=no-such-file.txt"], "prompt_file=no-such-file.txt: cannot read it"),
        (["step=3"], "no snapshot at step 3; the steps it has: 0, 1, 2, 4, 8, 16"),
        (["device=tpu"], "device='tpu': Input should be 'auto', 'cpu', 'cuda' or 'mps'"),
    ],
)
def test_bad_values_are_refused_naming_the_key(root, tmp_path, overrides, message):
    with pytest.raises(GlassboxError, match=re.escape(message)):
        sample(sample_cfg(root, *overrides), tmp_path)
    assert not (tmp_path / "samples.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        ("temperature=-1", "temperature=-1: Input should be greater than or equal to 0"),
        ("prompt=悟空道", "'悟' (U+609F)"),  # typed as it is: the entry point quotes it for Hydra
    ],
)
def test_the_command_exits_2_with_the_message(root, override, message):
    done = run_stage("sample", [*TINY, override], root, timeout=120)
    assert done.returncode == EXIT_USER_ERROR
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "override, problem",
    [
        ("use_cache=maybe", "use_cache='maybe': Input should be a valid boolean"),
        ("use_cache=1", "use_cache=1: Input should be a valid boolean"),
        ("num_samples=abc", "num_samples='abc': Input should be a valid integer"),
        ("num_samples=2.5", "num_samples=2.5: Input should be a valid integer"),
        ("top_k=2.5", "top_k=2.5: Input should be a valid integer"),
        ("temperature=abc", "temperature='abc': Input should be a valid number"),
    ],
)
def test_values_of_the_wrong_type_are_refused_not_guessed_at(root, tmp_path, override, problem):
    """Before the typed config, use_cache=maybe sampled with the cache and num_samples=2.5 ended in a traceback."""
    with pytest.raises(GlassboxError, match=re.escape(problem)):
        sample(sample_cfg(root, override), tmp_path)
    assert not (tmp_path / "samples.json").exists()


@pytest.mark.parametrize("override", ["+num_sample=1", "+sampler_name=greedy"])
def test_a_key_the_stage_does_not_read_is_refused_not_ignored(root, tmp_path, override):
    """`+num_sample=1` (what Hydra suggests for the typo num_sample=1) used to run with the default 3 samples."""
    key = override[1:].split("=")[0]
    with pytest.raises(GlassboxError, match=re.escape(f"{key}: not a key of this stage (did you mean ")):
        sample(sample_cfg(root, override), tmp_path)
    assert not (tmp_path / "samples.json").exists()


@pytest.mark.slow
def test_a_value_of_the_wrong_type_stops_the_command_before_its_folder_exists(root):
    samples = root / "outputs" / "tiny" / "samples"
    before = set(samples.iterdir()) if samples.exists() else set()
    done = run_stage("sample", [*TINY, "num_samples=2.5"], root, timeout=120)
    assert done.returncode == EXIT_USER_ERROR and "Traceback" not in done.stderr
    assert "num_samples=2.5: Input should be a valid integer" in done.stderr
    assert (set(samples.iterdir()) if samples.exists() else set()) == before


@pytest.mark.parametrize(
    "arg, value",
    [
        ("prompts=[悟空道,行者笑道]", ["悟空道", "行者笑道"]),
        ("prompts=['to be, or not',ROMEO:]", ["to be, or not", "ROMEO:"]),
        ("prompts=悟空道", "悟空道"),  # not a list: sample says so, instead of Hydra's token error
        ("prompt_file=开头.txt", "开头.txt"),
    ],
)
def test_prompt_lists_and_files_pass_hydra_literally(root, arg, value):
    key = arg.partition("=")[0]
    assert sample_cfg(root, arg)[key] == value


def test_zero_new_tokens_gives_the_prompts_back(root, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    written = sample(sample_cfg(root, "prompt=ROMEO:", "max_new_tokens=0", "num_samples=2"), tmp_path)
    assert written["prompts"][0]["samples"] == ["ROMEO:", "ROMEO:"]
    assert "max_new_tokens=0: the model did not run" in caplog.text
