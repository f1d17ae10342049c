"""Token batches from the prepare stage's files, read through a memory map.

Random training batches come from a seeded `torch.Generator` whose state is saved in every
snapshot, so a resumed run draws exactly the batches the uninterrupted one would have.
Evaluation and probe batches are fixed once per run, so every snapshot is measured on the
same text and the curves compare like with like.

The token files are checked when they are opened: their sha256 against the one `make prepare`
recorded in meta.json (a shuffled or otherwise changed file of the right length would train
without a sound), and every id against the vocabulary's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glassbox import fileio
from glassbox.errors import GlassboxError
from glassbox.text.vocab import Vocab


class TokenData:
    """train.bin / val.bin / vocab.json of one prepared corpus."""

    def __init__(self, processed_dir: str | Path) -> None:
        self.dir = Path(processed_dir)
        meta_path = self.dir / "meta.json"
        if not meta_path.exists():
            raise GlassboxError(
                f"no prepared corpus at {self.dir} (meta.json missing): run `make prepare` for this experiment first"
            )
        self.meta = fileio.read_json(meta_path)
        self.vocab = Vocab.load(self.dir / "vocab.json")
        if self.vocab.hash != self.meta["vocab_hash"]:
            raise GlassboxError(f"{self.dir}: vocab.json does not match meta.json; run `make prepare` again")
        dtype = np.dtype(self.meta["dtype"])
        for name in ("train", "val"):
            self._verify(self.dir / f"{name}.bin")
        self.splits = {name: np.memmap(self.dir / f"{name}.bin", dtype=dtype, mode="r") for name in ("train", "val")}
        for name, ids in self.splits.items():
            if len(ids) != self.meta["split"][name]:
                raise GlassboxError(
                    f"{self.dir / name}.bin has {len(ids)} tokens, meta.json says "
                    f"{self.meta['split'][name]}; run `make prepare` again"
                )
            largest = int(ids.max()) if len(ids) else 0
            if largest >= self.vocab.size:
                raise GlassboxError(
                    f"{self.dir / name}.bin holds token id {largest}, but the vocabulary has "
                    f"{self.vocab.size} characters (ids 0 to {self.vocab.size - 1}): the file does "
                    f"not belong to this vocabulary. Delete {self.dir} and run `make prepare` again."
                )

    def _verify(self, path: Path) -> None:
        """Raise a GlassboxError unless `path` is the file prepare wrote, byte for byte."""
        expected = self.meta.get("files", {}).get(path.name)
        if not path.exists():
            raise GlassboxError(f"{path} is missing: run `make prepare` again for this experiment")
        if expected is None:
            raise GlassboxError(f"{self.dir / 'meta.json'} records no sha256 for {path.name}: run `make prepare` again")
        if fileio.sha256_of(path) != expected:
            raise GlassboxError(
                f"{path} is not the file `make prepare` wrote: its sha256 differs from the one "
                "meta.json recorded, so it was changed or damaged since. Run `make prepare` again "
                "for this experiment: it rebuilds the file."
            )

    def _windows(self, split: str, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.splits[split]
        rows = np.stack([ids[s : s + block_size + 1] for s in starts.tolist()]).astype(np.int64)
        chunk = torch.from_numpy(rows)
        return chunk[:, :-1], chunk[:, 1:]

    def _check_length(self, split: str, block_size: int) -> int:
        n = len(self.splits[split]) - block_size - 1
        if n < 1:
            raise GlassboxError(
                f"the {split} split ({len(self.splits[split])} tokens) is shorter than "
                f"block_size {block_size} + 1; use a smaller model.block_size"
            )
        return n

    def batch(
        self,
        split: str,
        batch_size: int,
        block_size: int,
        generator: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of (input, target) windows, targets shifted by one character.

        With several ranks, every rank draws the same global batch of batch_size × world_size
        windows from the same generator and reads only its own slice: together they train on
        exactly what one process with the global batch would.
        """
        n = self._check_length(split, block_size)
        starts = torch.randint(n + 1, (batch_size * world_size,), generator=generator)
        return self._windows(split, starts[rank * batch_size : (rank + 1) * batch_size], block_size)

    def fixed_batches(
        self, split: str, n_batches: int, batch_size: int, block_size: int, seed: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The same batches at every evaluation, drawn from their own seed."""
        generator = torch.Generator().manual_seed(seed)
        return [self.batch(split, batch_size, block_size, generator) for _ in range(n_batches)]

    def probe_starts(self, n_sequences: int, block_size: int) -> torch.Tensor:
        """Where in the validation split the `probe_batch` windows start: evenly spaced."""
        n = self._check_length("val", block_size)
        return torch.linspace(0, n, n_sequences).long()

    def probe_windows(self, n_sequences: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Evenly spaced validation windows (input, target): the same text at every snapshot."""
        return self._windows("val", self.probe_starts(n_sequences, block_size), block_size)

    def probe_batch(self, n_sequences: int, block_size: int) -> torch.Tensor:
        """Evenly spaced validation windows: the text the per-layer statistics are measured on."""
        return self.probe_windows(n_sequences, block_size)[0]
