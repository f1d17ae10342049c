"""glassbox and the wider tool chain: Hugging Face, TransformerLens, nanoGPT and notebooks.

- export.py    a snapshot → a folder transformers, TransformerLens and nanoGPT load (`make export`)
- hf.py        a local Hugging Face causal LM, or a folder of its checkpoints, seen through glassbox's
               hook-point names, so the probe functions run on it unchanged
- hf_suites.py the snapshot-free analysis suites on such a model (`make inspect-hf`)
- notebook.py  `glassbox.load_run`: a training run as one object in a notebook

transformers, tokenizers, safetensors and pandas are the optional extra `interop`
(`pip install -e ".[interop]"`); they are imported only where needed, so the rest of glassbox
works without them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from glassbox.errors import GlassboxError


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise GlassboxError(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not installed: "
            'pip install -e ".[interop]" (transformers, tokenizers, safetensors, pandas)'
        ) from err
