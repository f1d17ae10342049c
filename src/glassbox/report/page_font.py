"""The font a page carries for its CJK characters: a subset of the one the PNG plots use.

A browser draws 说, 道 and 山 only with a font that has them. Many machines have none (a fresh Linux,
a container, a CI runner's headless Chromium), and the page would show empty boxes wherever a pair,
a prompt or a next-character bar names a character. The page is opened from disk and must work
offline, so it embeds its own: Noto Sans CJK SC as the mplfonts wheel ships it (report/plotting.py
registers the same file for the plots), cut with fontTools to the characters the page draws and
packed as WOFF2 (brotli), in an `@font-face` rule with a data URL.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from glassbox.report.plotting import PACKAGED_CJK_FONT

FAMILY = "glassbox CJK"  # the @font-face name; the page's CSS and its plots list it after their Latin fonts


def packaged_font_path() -> Path:
    from mplfonts.conf import FONT_DIR

    return Path(FONT_DIR) / PACKAGED_CJK_FONT


def cjk_subset_woff2(text: str) -> bytes | None:
    """The packaged font cut to the non-ASCII characters of `text` that it draws, as WOFF2; None if none.

    ASCII is left to the browser's own fonts, so Latin text looks as it does on any page.
    """
    font = TTFont(packaged_font_path(), lazy=True, recalcTimestamp=False)  # the same page for the same data
    cmap = font.getBestCmap()
    chars = sorted({c for c in text if ord(c) > 0x7F and ord(c) in cmap})
    if not chars:
        return None
    options = subset.Options()
    options.layout_features = []  # no vertical forms or ligatures: the page draws characters one by one
    options.name_IDs = [1, 2]  # family and style, nothing else of the name table
    options.hinting = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(chars))
    subsetter.subset(font)
    font.flavor = "woff2"
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


def font_face_css(text: str) -> str:
    """An `@font-face` rule that gives the page `FAMILY` for the CJK characters of `text` ("" if it has none)."""
    woff2 = cjk_subset_woff2(text)
    if woff2 is None:
        return ""
    data = base64.b64encode(woff2).decode("ascii")
    return f"@font-face {{ font-family: '{FAMILY}'; src: url(data:font/woff2;base64,{data}) format('woff2'); }}"
