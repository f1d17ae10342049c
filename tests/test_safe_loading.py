"""Loading never runs code: a snapshot crafted to run code on unpickling is refused before it can, and
no source file unpickles, evaluates or calls torch.load without weights_only=True."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from glassbox.errors import GlassboxError
from glassbox.paths import PROJECT_ROOT
from glassbox.run.snapshots import load_snapshot, save_snapshot


class RunsCode:
    """Unpickling this calls Path.touch: what a malicious .pt file could do with os.system instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_snapshot_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "run" / "checkpoints" / "step_0000000.pt"
    save_snapshot(path, {"step": 0, "payload": RunsCode(marker)})  # its checksum is recorded: it is "valid"
    with pytest.raises(GlassboxError, match="unreadable"):
        load_snapshot(path)
    assert not marker.exists()


def test_every_torch_load_is_weights_only_and_nothing_unpickles_or_evaluates():
    sources = {p: p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "src" / "glassbox").rglob("*.py")}
    loads = [(p.name, call) for p, text in sources.items() for call in re.findall(r"torch\.load\([^)]*\)", text)]
    assert loads and all("weights_only=True" in call for _, call in loads), loads
    for p, text in sources.items():
        assert not re.search(r"\bimport pickle\b|\bpickle\.|(?<![.\w])(eval|exec)\(|allow_pickle=True", text), p
