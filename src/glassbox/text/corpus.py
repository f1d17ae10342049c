"""Fetch, verify, decode and normalize a raw text. Knows nothing about tokens.

The corpus is identified by its sha256: a cached file with the right hash is used as is,
anything else is downloaded again and checked before it replaces the cache. A text file of the
user's own needs no hash up front: it is trusted as it is (prepare records its sha256).
"""

from __future__ import annotations

import codecs
import unicodedata
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from glassbox.errors import GlassboxError
from glassbox.fileio import atomic_path, sha256_of

AUTO_ENCODINGS = ("utf-8-sig", "gb18030")  # utf-8-sig also reads UTF-8 without a BOM
BOM = "\ufeff"
# Real text in any language has few characters in U+0080-U+00FF (accented letters are a few percent even of
# French); bytes of a multi-byte encoding read as Latin-1 are mostly made of them.
MOJIBAKE_SHARE = 0.25


def fetch(url: str, sha256: str, cache_path: Path) -> Path:
    """Return `cache_path` holding the file with this sha256, downloading it if needed."""
    cache_path = Path(cache_path)
    stale = None
    if cache_path.exists():
        found = sha256_of(cache_path)
        if found == sha256:
            return cache_path
        stale = f"the cached file {cache_path} has sha256 {found}, expected {sha256}"
    try:
        _download(url, cache_path, sha256)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        problem = (
            f"{stale}, and downloading it again failed"
            if stale
            else "the corpus is not cached and downloading it failed"
        )
        raise GlassboxError(
            f"{problem} ({reason}).\n"
            f"  Download it from {url}\n"
            f"  and place it at {cache_path.resolve()}\n"
            f"  (expected sha256 {sha256})."
        ) from err
    return cache_path


def local_file(path: str | Path, sha256: str | None = None) -> tuple[Path, str]:
    """A text file of the user's: its absolute path and sha256, checked against `sha256` when one is given."""
    path = Path(path).expanduser()
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise GlassboxError(
            f"corpus.path={path} {problem} (looked for {path.resolve()}); give the path of a "
            "text file (UTF-8 or GB18030), relative to the directory you run in or absolute"
        )
    try:
        found = sha256_of(path)
    except OSError as err:
        raise GlassboxError(f"corpus.path={path} cannot be read ({err.strerror}); check its permissions") from err
    if sha256 and found != sha256:
        raise GlassboxError(
            f"corpus.path={path} has sha256 {found}, but corpus.sha256 is {sha256}: "
            "the file changed, or drop corpus.sha256 to trust it as it is"
        )
    return path.resolve(), found


def _download(url: str, dest: Path, sha256: str) -> None:
    """Stream `url` into a temporary file with a progress bar; keep it only if the hash matches."""
    with urllib.request.urlopen(url, timeout=30) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with (
            atomic_path(dest) as tmp,
            open(tmp, "wb") as out,
            tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}") as bar,
        ):
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            found = sha256_of(tmp)
            if found != sha256:
                raise ValueError(f"downloaded file has sha256 {found}, expected {sha256}")


def decode(raw: bytes, encoding: str = "auto") -> tuple[str, str]:
    """Decode bytes strictly; `auto` tries UTF-8 (BOM or not), then GB18030. Returns (text, encoding used)."""
    candidates = AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    failures = []
    for name in candidates:
        try:
            text = raw.decode(name)
            if codecs.lookup(name).name.startswith("utf"):  # a byte order mark is not a character of the text
                text = text.removeprefix(BOM)
            return text, ("utf-8" if name == "utf-8-sig" else name)
        except LookupError as err:
            raise GlassboxError(
                f"unknown encoding {encoding!r}; use auto or a Python codec name such as utf-8 or gb18030"
            ) from err
        except UnicodeDecodeError as err:
            failures.append(
                f"{name} fails at byte offset {err.start} (bytes {raw[err.start : err.start + 4].hex(' ')})"
            )
    raise GlassboxError(
        "the corpus could not be decoded: " + "; ".join(failures) + ". Set corpus.encoding to the file's real encoding."
    )


def mojibake_warning(text: str, encoding: str) -> str | None:
    """A warning when `text` looks decoded with the wrong codec: mostly C1 controls and Latin-1 supplement."""
    counts = Counter(text)
    visible = sum(n for ch, n in counts.items() if not ch.isspace())
    suspect = {ch: n for ch, n in counts.items() if "\x80" <= ch <= "\xff"}
    share = sum(suspect.values()) / max(visible, 1)
    if share < MOJIBAKE_SHARE:
        return None
    common = ", ".join(repr(ch) for ch in sorted(suspect, key=suspect.get, reverse=True)[:5])
    return (
        f"the corpus decoded as {encoding} looks like mojibake: {share:.0%} of its characters are C1 controls "
        f"or Latin-1 supplement characters (U+0080-U+00FF; most often {common}), which real text rarely is. "
        "The file is probably in another encoding: try corpus.encoding=auto (UTF-8, then GB18030), or the "
        "file's real encoding."
    )


def normalize(text: str, newlines: bool = True, strip_indent: bool = False, nfkc: bool = False) -> str:
    """Opt-in clean-ups, applied in a fixed order and recorded in meta.json by the caller."""
    if newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if strip_indent:
        text = "\n".join(line.lstrip(" \t\u3000") for line in text.split("\n"))
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    return text
