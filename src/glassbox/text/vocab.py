"""The character vocabulary: the one place text becomes token ids and back.

IDs are the sorted unique characters of the corpus, so the same text always gives the same
vocabulary. It is saved as readable UTF-8 JSON (never pickle) with a content hash that
snapshots record, so a model is never paired with a vocabulary it was not trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glassbox import fileio
from glassbox.errors import GlassboxError


@dataclass(frozen=True)
class Vocab:
    itos: list[str]
    counts: list[int]  # occurrences of each character in the whole corpus, by id
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stoi", {ch: i for i, ch in enumerate(self.itos)})

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        counter = Counter(text)
        itos = sorted(counter)
        return cls(itos=itos, counts=[counter[ch] for ch in itos])

    @property
    def size(self) -> int:
        return len(self.itos)

    @property
    def hash(self) -> str:
        """sha256 of the id → character table: equal hashes mean interchangeable token ids."""
        table = json.dumps(self.itos, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(table).hexdigest()

    @property
    def dtype(self) -> np.dtype:
        """Little-endian uint16 while every id fits, else uint32."""
        return np.dtype("<u2") if self.size <= 1 << 16 else np.dtype("<u4")

    def missing(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.stoi))

    def encode(self, text: str) -> list[int]:
        unknown = self.missing(text)
        if unknown:
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in unknown[:20])
            raise GlassboxError(
                f"{len(unknown)} character(s) are not in the vocabulary: {shown}. "
                "Use characters that occur in the training corpus."
            )
        return [self.stoi[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def most_frequent(self, n: int) -> list[tuple[str, int]]:
        ranked = sorted(range(self.size), key=lambda i: (-self.counts[i], i))
        return [(self.itos[i], self.counts[i]) for i in ranked[:n]]

    def to_json(self) -> dict:
        return {
            "vocab_size": self.size,
            "hash": self.hash,
            "itos": self.itos,
            "stoi": self.stoi,
            "counts": dict(zip(self.itos, self.counts)),
        }

    def save(self, path: str | Path) -> None:
        fileio.write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        if not path.exists():
            raise GlassboxError(f"no vocabulary at {path}: run `make prepare` for this corpus first")
        try:
            data = fileio.read_json(path)
            vocab = cls(itos=data["itos"], counts=[data["counts"][ch] for ch in data["itos"]])
            intact = vocab.hash == data["hash"]
        except (ValueError, KeyError, TypeError) as err:  # not JSON, or not a vocabulary's fields
            raise GlassboxError(f"{path} is corrupt ({type(err).__name__}: {err}); run `make prepare` again") from err
        if not intact:
            raise GlassboxError(f"{path} is corrupt: its hash does not match its contents; run `make prepare` again")
        return vocab
