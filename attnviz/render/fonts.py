"""Finding a monospace font (plus a CJK fallback) and rendering token text to glyph masks.

Which characters a font can draw is read from its cmap (fontTools, a matplotlib dependency), so text the fonts
cannot draw is reported once instead of silently turning into boxes.
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from attnviz.errors import AttnvizError

log = logging.getLogger(__name__)

MONO_FAMILIES = ("DejaVu Sans Mono", "Liberation Mono", "Noto Sans Mono", "Ubuntu Mono", "Courier New")
CJK_FILE_HINTS = (
    "notosanscjk",
    "notosansmonocjk",
    "notoserifcjk",
    "sourcehan",
    "wqy",
    "wenquanyi",
    "droidsansfallback",
)
CJK_PROBE = "中"  # a font that draws this is taken as a CJK fallback
LINE_SPACING = 0.3  # extra space between lines, as a fraction of the font size

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class FontSet:
    """A primary font, an optional fallback for characters it lacks, and their shared line metrics."""

    primary: Font
    fallback: Font | None
    primary_chars: frozenset[int] | None  # code points the primary draws; None: unknown (assume all)
    fallback_chars: frozenset[int] | None
    name: str  # for messages
    ascent: int  # baseline offset from the top of a line
    line_height: int
    warned: set[str] = field(default_factory=set, compare=False)  # characters already reported

    def font_for(self, ch: str) -> Font:
        if self.fallback is None or _covers(self.primary_chars, ch) or not _covers(self.fallback_chars, ch):
            return self.primary
        return self.fallback

    def missing_chars(self, text: str) -> list[str]:
        """Visible characters that neither font can draw, in first-seen order."""
        seen: dict[str, None] = {}
        for ch in text:
            if ch.isspace() or not ch.isprintable() or ch in seen:
                continue
            if not _covers(self.primary_chars, ch) and (self.fallback is None or not _covers(self.fallback_chars, ch)):
                seen[ch] = None
        return list(seen)

    def text_width(self, text: str) -> float:
        return sum(_length(font, run) for font, run in self._runs(text))

    def render_mask(self, text: str) -> np.ndarray:
        """(line_height, ceil(width)) uint8 coverage of ``text`` drawn on one line (no newlines)."""
        width = max(1, math.ceil(self.text_width(text)))
        img = Image.new("L", (width, self.line_height), 0)
        self.draw(ImageDraw.Draw(img), (0, 0), text, 255)
        return np.asarray(img)

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill) -> None:
        """Draw one line of ``text`` with its top-left at ``xy``, each character in a font that has it."""
        x, top = xy
        for font, run in self._runs(text):
            if isinstance(font, ImageFont.FreeTypeFont):
                draw.text((x, top + self.ascent), run, font=font, fill=fill, anchor="ls")
            else:  # bitmap fonts know no anchors
                draw.text((x, top), run, font=font, fill=fill)
            x += _length(font, run)

    def _runs(self, text: str) -> list[tuple[Font, str]]:
        """Split ``text`` into maximal runs drawn with the same font."""
        runs: list[tuple[Font, str]] = []
        for ch in text:
            font = self.font_for(ch)
            if runs and runs[-1][0] is font:
                runs[-1] = (font, runs[-1][1] + ch)
            else:
                runs.append((font, ch))
        return runs

    def warn_missing(self, text: str) -> list[str]:
        """Log ONE warning naming the characters of ``text`` no font can draw (not reported before)."""
        missing = [ch for ch in self.missing_chars(text) if ch not in self.warned]
        self.warned.update(missing)
        if missing:
            shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            log.warning(
                "font %s cannot draw %d character(s): %s%s; they will show as boxes. "
                "Set render.font_path or render.cjk_font_path to a font that has them (e.g. Noto Sans CJK).",
                self.name,
                len(missing),
                shown,
                more,
            )
        return missing


def find_font(path: str | None, size: int, cjk_path: str | None = None) -> FontSet:
    """The font at ``path``, else a system monospace font, else PIL's default; plus a CJK fallback: the font
    at ``cjk_path``, else one found on the system (none if the primary draws CJK itself)."""
    return _find_font(path, int(size), cjk_path)


@lru_cache(maxsize=32)
def _find_font(path: str | None, size: int, cjk_path: str | None = None) -> FontSet:
    for key, value in (("font_path", path), ("cjk_font_path", cjk_path)):
        if value is not None and not Path(value).is_file():
            raise AttnvizError(f"render.{key}={value} does not exist; give a .ttf/.otf/.ttc file or null to search")
    primary_path = path or _system_monospace()
    if primary_path is None:
        log.warning("no monospace font found on this system; using PIL's default font")
        primary: Font = ImageFont.load_default(size)
        name = "PIL default"
    else:
        primary = ImageFont.truetype(primary_path, size)
        name = Path(primary_path).name
    primary_chars = font_charset(primary_path if primary_path else getattr(primary, "path", None))
    fallback_path = cjk_path or (None if _covers(primary_chars, CJK_PROBE) else _system_cjk())
    fallback = ImageFont.truetype(fallback_path, size) if fallback_path else None
    if fallback_path:
        log.info("CJK fallback font: %s", fallback_path)
    metrics = [_metrics(f) for f in (primary, fallback) if f is not None]
    ascent = max(a for a, _ in metrics)
    descent = max(d for _, d in metrics)
    line_height = ascent + descent + max(1, round(LINE_SPACING * size))
    return FontSet(primary, fallback, primary_chars, font_charset(fallback_path), name, ascent, line_height)


@lru_cache(maxsize=1)
def _system_monospace() -> str | None:
    """A monospace font file: fontconfig's choice, else matplotlib's (it ships DejaVu Sans Mono)."""
    found = _fc_match("monospace")
    if found:
        return found
    try:
        from matplotlib import font_manager
    except ImportError:
        return None
    for family in MONO_FAMILIES:
        try:
            props = font_manager.FontProperties(family=family)
            return font_manager.findfont(props, fallback_to_default=False)
        except ValueError:
            continue
    return None


@lru_cache(maxsize=1)
def _system_cjk() -> str | None:
    """A font that draws CJK: fontconfig's choice for Chinese, else a known CJK font file."""
    candidates = [_fc_match(":lang=zh")]
    try:
        from matplotlib import font_manager

        files = sorted(font_manager.findSystemFonts())
        candidates += [f for f in files if any(h in Path(f).name.lower() for h in CJK_FILE_HINTS)]
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and _covers(font_charset(candidate), CJK_PROBE):
            return candidate
    return None


def _fc_match(pattern: str) -> str | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-f", "%{file}", pattern], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and Path(out).is_file() and out.lower().endswith((".ttf", ".otf", ".ttc")) else None


def font_charset(source: str | io.BytesIO | None) -> frozenset[int] | None:
    """Code points a font file maps to glyphs; None when it cannot be read."""
    if isinstance(source, str):
        return _file_charset(source)
    return _read_charset(source) if source is not None else None


@lru_cache(maxsize=16)
def _file_charset(path: str) -> frozenset[int] | None:
    return _read_charset(path)


def _read_charset(source: str | io.BytesIO) -> frozenset[int] | None:
    try:
        from fontTools.ttLib import TTFont

        if isinstance(source, io.BytesIO):
            source.seek(0)
        font = TTFont(source, fontNumber=0, lazy=True)
        return frozenset(font.getBestCmap() or ())
    except Exception:  # noqa: BLE001 - any unreadable font just means "coverage unknown"
        return None


def _covers(chars: frozenset[int] | None, ch: str) -> bool:
    return chars is None or ord(ch) in chars


def _length(font: Font, text: str) -> float:
    return float(font.getlength(text)) if hasattr(font, "getlength") else float(font.getbbox(text)[2])


def _metrics(font: Font) -> tuple[int, int]:
    if isinstance(font, ImageFont.FreeTypeFont):
        return font.getmetrics()
    return font.getbbox("Ag")[3], 0
