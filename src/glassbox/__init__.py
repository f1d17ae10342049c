"""glassbox: a character-level GPT you can see straight through, and the data of how meaning emerges in it."""


def __getattr__(name: str):
    # Imported on first use, so `import glassbox` (and every stage's start) stays light.
    if name in ("load_run", "Run"):
        from glassbox.interop import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'glassbox' has no attribute {name!r}")


__all__ = ["Run", "load_run"]
