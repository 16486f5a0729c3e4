"""Finding a monospace font (plus a CJK fallback) and rendering token text to glyph masks.

Which characters a font can draw is read from its cmap (fontTools, a matplotlib dependency), so text the fonts
cannot draw is reported once instead of silently turning into boxes.

Whatever a model writes must not stop a render: every string :class:`FontSet` measures or draws first goes through
:func:`drawable`, which turns the characters the text shaper (raqm) cannot lay out, and other invisible controls,
into visible escapes; text Pillow still rejects is drawn fully escaped.
"""

from __future__ import annotations

import io
import logging
import math
import re
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

# Drawn as escapes (\x1c, \u2029, \ud800): the C0/C1 controls, the line and paragraph separators and lone
# surrogates. raqm fails the whole layout ("raqm_layout() failed") on the paragraph separators (bidi class B);
# a scan of U+0000..U+10FFFF with raqm 0.11 / FriBiDi 1.0 found exactly \n \r \x1c \x1d \x1e \x85 \u2029, all
# in this class. The other controls draw as nothing or a box, and a lone surrogate is no text at all (it fails
# to encode as UTF-8). All of these are non-printable, so str.isprintable() is an exact fast path.
UNDRAWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Line breaks and tabs: the text panel lays them out, one-line text shows them escaped; not worth a warning.
LAYOUT_CHARS = frozenset("\n\r\t\u2028\u2029")
LAYOUT_ERRORS = (RuntimeError, ValueError, OSError)  # what Pillow raises for text it cannot lay out


def escape(ch: str) -> str:
    r"""One character as a Python escape: ``\x1c``, ``\u2029``, ``\ud800``, ``\n``."""
    return ch.encode("unicode_escape").decode("ascii")


def drawable(text: str) -> str:
    r"""``text`` as it can be drawn on one line: controls, line/paragraph separators and lone surrogates as visible
    escapes (``"a\x1cb"`` -> ``"a\\x1cb"``); all else, RTL, combining marks and emoji included, unchanged."""
    if text.isprintable():  # the usual case, at C speed: none of UNDRAWABLE is printable
        return text
    return UNDRAWABLE.sub(lambda m: escape(m.group()), text)


def escaped_all(text: str) -> str:
    """Every character outside printable ASCII escaped: the last resort for text Pillow will not lay out."""
    return text.encode("unicode_escape").decode("ascii")


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
    given_up: dict[str, str] = field(default_factory=dict, compare=False)  # text Pillow rejected -> what is drawn

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
        shown = self.shown(text)
        try:
            return self._width(shown)
        except LAYOUT_ERRORS as err:
            return self._width(self._give_up(text, err))

    def render_mask(self, text: str) -> np.ndarray:
        """(line_height, ceil(width)) uint8 coverage of ``text`` drawn on one line (no newlines)."""
        width = max(1, math.ceil(self.text_width(text)))
        img = Image.new("L", (width, self.line_height), 0)
        self.draw(ImageDraw.Draw(img), (0, 0), text, 255)
        return np.asarray(img)

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill) -> None:
        """Draw one line of ``text`` with its top-left at ``xy``, each character in a font that has it."""
        shown = self.shown(text)
        try:
            self._draw(draw, xy, shown, fill)
        except LAYOUT_ERRORS as err:
            self._draw(draw, xy, self._give_up(text, err), fill)

    def shown(self, text: str) -> str:
        """What is drawn for ``text``: :func:`drawable` of it (naming new escaped characters in one warning)."""
        if self.given_up and text in self.given_up:
            return self.given_up[text]
        if text.isprintable():
            return text
        self.warn_escaped(text)
        return drawable(text)

    def _width(self, shown: str) -> float:
        return sum(_length(font, run) for font, run in self._runs(shown))

    def _draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], shown: str, fill) -> None:
        x, top = xy
        runs = self._runs(shown)
        advances = [_length(font, run) for font, run in runs]  # first: text Pillow rejects fails before any pixel
        for (font, run), advance in zip(runs, advances, strict=True):
            if isinstance(font, ImageFont.FreeTypeFont):
                draw.text((x, top + self.ascent), run, font=font, fill=fill, anchor="ls")
            else:  # bitmap fonts know no anchors
                draw.text((x, top), run, font=font, fill=fill)
            x += advance

    def _give_up(self, text: str, err: Exception) -> str:
        """The fully escaped form of ``text``, remembered; the first such text of this font set is logged."""
        if not self.given_up:
            log.warning(
                "font %s: Pillow could not lay out the text %s (%s: %s); such text is drawn fully escaped",
                self.name, ascii(text[:80]), type(err).__name__, err,
            )
        self.given_up[text] = escaped_all(text)
        return self.given_up[text]

    def _runs(self, text: str) -> list[tuple[Font, str]]:
        """Split ``text`` into maximal runs drawn with the same font."""
        if self.fallback is None:  # one font draws everything (and long tokens are not rebuilt char by char)
            return [(self.primary, text)] if text else []
        runs: list[tuple[Font, str]] = []
        for ch in text:
            font = self.font_for(ch)
            if runs and runs[-1][0] is font:
                runs[-1] = (font, runs[-1][1] + ch)
            else:
                runs.append((font, ch))
        return runs

    def warn_escaped(self, text: str) -> list[str]:
        """Log ONE warning naming the characters of ``text`` drawn as escapes (not reported before; line breaks
        and tabs are layout, not reported)."""
        found = dict.fromkeys(UNDRAWABLE.findall(text))
        new = [ch for ch in found if ch not in LAYOUT_CHARS and ch not in self.warned]
        self.warned.update(new)
        if new:
            names = ", ".join(f"{escape(ch)} (U+{ord(ch):04X})" for ch in new[:20])
            more = f" and {len(new) - 20} more" if len(new) > 20 else ""
            log.warning("token text holds %d character(s) that cannot be drawn: %s%s; they are shown as escapes",
                        len(new), names, more)
        return new

    def warn_missing(self, text: str) -> list[str]:
        """Log ONE warning naming the characters of ``text`` no font can draw (not reported before), and one naming
        those drawn as escapes (:meth:`warn_escaped`)."""
        self.warn_escaped(text)
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
