"""glassbox: a character-level GPT you can see straight through, and the data of how meaning emerges in it."""

from glassbox import paths  # noqa: F401 - registers the config resolver every stage's corpus config may use


def __getattr__(name: str):
    # Imported on first use, so `import glassbox` (and every stage's start) stays light.
    if name in ("load_run", "Run"):
        from glassbox.interop import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'glassbox' has no attribute {name!r}")


__all__ = ["Run", "load_run"]
