"""Where the project's configuration lives, found from this file so any working directory works, and
the name a corpus of your own gets from its file (conf/corpus/local.yaml: `${glassbox.corpus_name:...}`)."""

import hashlib
import re
from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


def corpus_name(path: str | None) -> str:
    """A corpus name from its file's name: `texts/Hong Lou Meng.txt` → `hong-lou-meng`.

    ASCII letters, digits, `_` and `-` are kept, anything else becomes one `-`: W&B artifact names
    allow no other characters. A name with none of them (`红楼梦.txt`) becomes `local-` and 8 hex
    digits of its hash, the same every time; corpus.name=hongloumeng gives a readable one. `local`
    while no path is given (prepare then says that corpus.path is missing).
    """
    if not path:
        return "local"
    stem = Path(path).stem
    return (
        re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_").lower()
        or f"local-{hashlib.sha256(stem.encode()).hexdigest()[:8]}"
    )


# Registered on import of any glassbox module (glassbox/__init__.py imports this one): a saved
# .hydra/config.yaml of a run on a local corpus needs it to be read back as well.
OmegaConf.register_new_resolver("glassbox.corpus_name", corpus_name)
