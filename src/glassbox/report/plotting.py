"""What every plot of glassbox shares: fonts that draw the probe characters, colours, PNG bytes.

Plots use matplotlib's object API (a Figure on an Agg canvas), never pyplot's global state.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from glassbox.report.markdown import WHITESPACE

# Noto Sans CJK SC (simplified Chinese forms, SIL Open Font License) as shipped inside the mplfonts wheel.
PACKAGED_CJK_FONT = "NotoSansCJKsc-Regular.otf"
# Fonts a system may have, looked for by name when a character is missing from the packaged font too.
SYSTEM_CJK_FONT_NAMES = (
    "CJK",
    "WenQuanYi",
    "SimHei",
    "Source Han",
    "YaHei",
    "PingFang",
    "Heiti",
    "Hiragino",
    "Droid Sans Fallback",
    "AR PL",
)
_TAB20 = matplotlib.colormaps["tab20"].colors
COLOURS = _TAB20[0::2] + _TAB20[1::2]  # a colour per line: tab10's 10 strong, then their 10 light shades


class CharLabels:
    """How plots write characters: as themselves where a font has the glyph, else as U+8BF4.

    matplotlib ships no CJK font. The one the mplfonts package ships (Noto Sans CJK SC) is tried
    first, so a plot looks the same on every machine; then fonts installed on the system, by name
    (WenQuanYi, SimHei, Source Han, ...). Each is checked glyph by glyph. Characters no font draws
    would come out as empty boxes; they are labelled by code point instead. font_names=() uses no
    CJK font at all.
    """

    def __init__(self, chars: Iterable[str], font_names: Iterable[str] | None = None) -> None:
        needed = sorted({c for c in chars if c not in WHITESPACE})
        default = FT2Font(font_manager.findfont("DejaVu Sans"))
        lacking = [c for c in needed if not default.get_char_index(ord(c))]
        if font_names is None:
            font_names = (packaged_cjk_font(), *SYSTEM_CJK_FONT_NAMES)
        self.family = _font_with_glyphs(lacking, tuple(font_names)) if lacking else None
        self.as_code_points = [] if self.family else lacking

    @property
    def families(self) -> list[str]:
        """font.family for matplotlib: DejaVu Sans, falling back glyph by glyph to the CJK font."""
        return ["DejaVu Sans", *([self.family] if self.family else [])]

    def __call__(self, text: str) -> str:
        parts = [f"U+{ord(c):04X}" if c in self.as_code_points else WHITESPACE.get(c, c) for c in text]
        return " ".join(parts) if any(c in self.as_code_points for c in text) else "".join(parts)


@functools.cache
def packaged_cjk_font() -> str:
    """Register the CJK font inside the mplfonts package with matplotlib (once); return its family name.

    Only the font file is used: mplfonts' own setup would copy fonts into matplotlib's folder and
    rewrite the user's matplotlibrc.
    """
    from mplfonts.conf import FONT_DIR

    path = str(Path(FONT_DIR) / PACKAGED_CJK_FONT)
    font_manager.fontManager.addfont(path)
    return FT2Font(path).family_name


def _font_with_glyphs(chars: list[str], font_names: tuple[str, ...]) -> str | None:
    """The first font, in the order of font_names, whose name contains that name and that draws every char."""
    for name in font_names:
        for entry in font_manager.fontManager.ttflist:
            if name.lower() in entry.name.lower():
                font = FT2Font(entry.fname)
                if all(font.get_char_index(ord(c)) for c in chars):
                    return entry.name
    return None


def figure(n_rows: int = 1, n_cols: int = 1, size: tuple[float, float] = (7, 4)):
    """A Figure on its own Agg canvas and its axes as a 2-d array (axes[row, col])."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(n_rows, n_cols, squeeze=False)


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def missing_font_notice(as_code_points: list[str]) -> str:
    """The one piece of advice for plots that had to label characters by code point."""
    shown = "".join(as_code_points[:12]) + ("…" if len(as_code_points) > 12 else "")
    first = as_code_points[0]
    return (
        f"no installed font draws {shown}: the plots label those characters by code point ({first} = "
        f"U+{ord(first):04X}). The mplfonts package's Noto Sans CJK SC lacks them too: install a font that "
        "has them (e.g. Noto Sans CJK, WenQuanYi) and draw them again to see the characters."
    )
