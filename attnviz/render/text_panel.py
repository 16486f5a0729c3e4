"""The text panel: where the shown text starts, its layout (computed once) and the per-frame recolouring.

The layout places every shown token once. Its glyphs are kept as sparse pixel lists in token order, so painting
a frame is one vectorised blend of the pixels of the tokens shown so far, each pixel coloured by its token.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from attnviz.analysis import char_offsets, token_at
from attnviz.render.colors import BACKGROUND_RGB, CURRENT_TOKEN_RGB
from attnviz.render.fonts import FontSet
from attnviz.sinks import assistant_start
from attnviz.trace import Trace

LEVELS = 32  # glyph coverage levels kept for antialiasing (steps of 8/255 are invisible)
PIXEL = np.dtype("V3")  # one RGB pixel as an opaque 3-byte item: one copy per pixel, not three
TAB = "    "


def find_text_start(trace: Trace, start_phrase: str | None) -> tuple[int, bool]:
    """(sequence position where the text panel starts, whether ``start_phrase`` was found).

    Found: the first token whose span covers the first character of the phrase's first occurrence in the
    concatenated token texts. Otherwise: the start of the prompt's last assistant turn, by the trace's chat format
    (:func:`attnviz.sinks.assistant_start`); ``prompt_len`` (the generated answer) if there is none.
    """
    text = "".join(trace.token_texts)
    at = text.find(start_phrase) if start_phrase else -1
    if at >= 0:
        return token_at(char_offsets(trace.token_texts), at), True
    start = assistant_start(trace.token_texts, trace.prompt_len, trace.chat_format)
    return (trace.prompt_len if start is None else start), False


def display_text(text: str) -> str:
    """Token text as drawn: tabs expanded, line separators as newlines, \\r and invisible format characters (ZWJ,
    bidi marks) dropped. Other controls (\\x1c, NUL) are kept so FontSet draws them as visible escapes: a token
    made of them must not vanish from the panel."""
    if text.isprintable():  # the usual case: nothing to change
        return text
    out = []
    for ch in text.replace("\t", TAB):
        category = unicodedata.category(ch)
        if ch == "\n" or category in ("Zl", "Zp"):
            out.append("\n")
        elif ch != "\r" and category != "Cf":
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Piece:
    token: int  # index into the panel's token list
    text: str  # what is drawn (one line, no newline)
    x: int  # left edge in content coordinates
    y: int  # top of its line in content coordinates
    w: int  # drawn width in pixels


def layout_tokens(texts: list[str], fonts: FontSet, width: int) -> tuple[list[Piece], list[tuple[int, int]]]:
    """Place token texts in lines ``width`` pixels wide: newlines break lines, words wrap whole.

    Returns the pieces (a token split by newlines or wrapping has several) and every token's anchor (x, y):
    where its first piece starts, used to mark an invisible current token (a newline, a space at a wrap).
    """
    flow = _Flow(fonts, width)
    anchors: list[tuple[int, int]] = []
    for word in _words(texts):
        segments = [s for _, s in word if s is not None]
        word_w = sum(fonts.text_width(s) for s in segments)
        if segments and flow.x > 0 and flow.x + word_w > width and word_w <= width:
            flow.newline()  # the whole word moves to the next line
        for token, segment in word:
            if len(anchors) == token:
                anchors.append((round(flow.x), flow.top))
            if segment is None:
                flow.newline(wrapped=False)
            else:
                flow.place(token, segment)
    while len(anchors) < len(texts):
        anchors.append((round(flow.x), flow.top))
    return flow.pieces, anchors


class _Flow:
    """A text cursor that appends pieces line by line."""

    def __init__(self, fonts: FontSet, width: int):
        self.fonts, self.width = fonts, width
        self.x = 0.0  # float: glyph advances accumulate exactly
        self.line = 0
        self.wrapped = True  # the line began by wrapping (or is the first): leading spaces are dropped
        self.pieces: list[Piece] = []

    @property
    def top(self) -> int:
        return self.line * self.fonts.line_height

    def newline(self, wrapped: bool = True) -> None:  # wrapped: the next line drops leading spaces
        self.x, self.line, self.wrapped = 0.0, self.line + 1, wrapped

    def place(self, token: int, text: str) -> None:
        w = self.fonts.text_width(text)
        if self.x > 0 and self.x + w > self.width:
            self.newline()
        if self.x == 0 and self.wrapped:
            text = text.lstrip(" ")  # a wrapped line does not start with the space before its word
            w = self.fonts.text_width(text)
        if w <= self.width:
            if text:
                self.pieces.append(Piece(token, text, round(self.x), self.top, math.ceil(w)))
            self.x += w
            return
        for chunk in _split_to_width(text, self.fonts, self.width):  # the only case that splits a token
            if self.x > 0:
                self.newline()
            self.x = self.fonts.text_width(chunk)
            self.pieces.append(Piece(token, chunk, 0, self.top, math.ceil(self.x)))


def _words(texts: list[str]) -> list[list[tuple[int, str | None]]]:
    """Group (token, segment) items into words; a ``None`` segment is a newline and forms its own word.

    A new word starts at a segment beginning with whitespace or after one ending with it, so BPE pieces of one
    word ("under" + "stand") stay on one line.
    """
    words: list[list[tuple[int, str | None]]] = []
    prev_ends_word = True
    for token, text in enumerate(texts):
        for k, segment in enumerate(text.split("\n")):
            if k > 0:
                words.append([(token, None)])
                prev_ends_word = True
            if not segment:
                continue
            if prev_ends_word or segment[0].isspace():
                words.append([])
            words[-1].append((token, segment))
            prev_ends_word = segment[-1].isspace()
        if not text:  # an empty token (a special token decoded to "") joins the current word
            if words and not prev_ends_word:
                words[-1].append((token, ""))
            else:
                words.append([(token, "")])
    return words


def _split_to_width(text: str, fonts: FontSet, width: int) -> list[str]:
    """Cut ``text`` into chunks no wider than ``width`` (at least one character each)."""
    chunks, current = [], ""
    for ch in text:
        if current and fonts.text_width(current + ch) > width:
            chunks.append(current)
            current = ""
        current += ch
    return chunks + [current] if current else chunks


class TextPanel:
    """Token glyphs laid out once; :meth:`paint` recolours them for one frame.

    Glyph pixels are stored sparse and in token order: the pixels of tokens ``a..b`` are one slice.
    """

    def __init__(self, texts: list[str], fonts: FontSet, width: int, height: int):
        self.width, self.height, self.line_height = width, height, fonts.line_height
        self.texts = [display_text(t) for t in texts]
        fonts.warn_missing("".join(self.texts))
        pieces, anchors = layout_tokens(self.texts, fonts, width)
        self.pieces, self.anchors = pieces, anchors
        self.token_pieces: list[list[Piece]] = [[] for _ in self.texts]
        for p in pieces:
            self.token_pieces[p.token].append(p)
        self._pack(pieces, fonts)
        tops = np.array([a[1] for a in anchors], dtype=np.int64)  # (N,)
        bottoms = tops + fonts.line_height
        for p in pieces:
            bottoms[p.token] = max(bottoms[p.token], p.y + fonts.line_height)
        self.bottoms = np.maximum.accumulate(bottoms) if len(bottoms) else bottoms  # (N,) non-decreasing

    def _pack(self, pieces: list[Piece], fonts: FontSet) -> None:
        """Concatenate every piece's non-zero glyph pixels, in token order, into flat compact arrays.

        They are the text panel's only memory that grows with the answer (10 bytes a glyph pixel), so they are
        built without wide temporaries.
        """
        cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        ys, xs, alphas, counts = [], [], [], np.zeros(len(self.texts), dtype=np.int64)
        for p in pieces:
            if p.text not in cache:
                mask = fonts.render_mask(p.text)  # (line_height, w) uint8
                gy, gx = np.nonzero(mask)
                cache[p.text] = (gy.astype(np.int32), gx.astype(np.int16), mask[gy, gx])
            gy, gx, ga = cache[p.text]
            keep = gx < self.width - p.x  # glyph overhang past the panel edge is clipped
            ys.append(gy[keep] + np.int32(p.y))
            xs.append(gx[keep] + np.int16(p.x))
            alphas.append(ga[keep])
            counts[p.token] += int(keep.sum())
        cat = (lambda a, dt: np.concatenate(a).astype(dt, copy=False)) if pieces else (lambda a, dt: np.zeros(0, dt))
        self.ys, self.xs = cat(ys, np.int32), cat(xs, np.int16)  # (P,) content coordinates
        ys.clear(), xs.clear()
        label = np.repeat(np.arange(len(self.texts), dtype=np.int32), counts)  # (P,) token of each pixel
        level = (cat(alphas, np.uint8).astype(np.int32) * (LEVELS - 1) + 127) // 255  # (P,) coverage level
        self.shade = label * LEVELS + level  # (P,) int32 row of the shade table
        self.ptr = np.concatenate([[0], np.cumsum(counts)])  # (N + 1,) token i owns ptr[i]:ptr[i+1]

    def scroll_for(self, current: int) -> int:
        """Content y at the top of the view so that token ``current`` is visible (its line at the bottom)."""
        if current < 0 or not len(self.bottoms):
            return 0
        overflow = int(self.bottoms[current]) - self.height
        return max(0, -(-overflow // self.line_height) * self.line_height)  # whole lines: no half line on top

    def paint(
        self, frame: np.ndarray, origin: tuple[int, int], colors: np.ndarray, current: int, mark_current: bool
    ) -> None:
        """Draw tokens ``0..current`` into the panel at ``origin`` (x, y) of ``frame`` (H, W, 3) uint8.

        The panel area must hold plain background. ``colors`` (current + 1, 3) uint8: one colour per shown
        token; ``mark_current`` underlines the last one.
        """
        if current < 0:
            return
        if not frame.flags.c_contiguous:
            raise ValueError("frame must be C-contiguous")  # the flat pixel view below must not be a copy
        scroll = self.scroll_for(current)
        first = min(int(np.searchsorted(self.bottoms, scroll, side="right")), current)  # first visible token
        table = _shade_table(colors[first:])  # ((shown - first) * LEVELS,) visible tokens at each coverage level
        pixels = frame.reshape(-1, 3).view(PIXEL).ravel()  # (H * W,) one 3-byte item per pixel
        x0, y0 = origin
        lo, mid, hi = self.ptr[first], self.ptr[first + 1], self.ptr[current + 1]
        head = lo + np.flatnonzero(self.ys[lo:mid] >= scroll)  # only the first token can start above the view
        for idx in (head, slice(mid, hi)):
            flat = (self.ys[idx] + (y0 - scroll)) * frame.shape[1] + self.xs[idx] + x0  # int32 + int16: int32
            pixels[flat] = table[self.shade[idx] - first * LEVELS]
        if mark_current:
            view = frame[y0 : y0 + self.height, x0 : x0 + self.width]
            self._underline(view, current, scroll)

    def _underline(self, view: np.ndarray, token: int, scroll: int) -> None:
        """A blue bar under the current token, or a caret at its place if it draws nothing (newline, space)."""
        blue = np.asarray(CURRENT_TOKEN_RGB, dtype=np.uint8)
        lh = self.line_height
        thick = max(2, lh // 12)
        visible = [p for p in self.token_pieces[token] if p.text.strip()]
        if not visible:
            x, y = self.anchors[token]
            view[max(0, y + 2 - scroll) : max(0, y + lh - 2 - scroll), x : x + thick] = blue
            return
        for p in visible:
            y0 = p.y + lh - thick - 1 - scroll
            if 0 <= y0 < self.height:
                view[y0 : y0 + thick, p.x : p.x + p.w] = blue


def _shade_table(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 token colours -> (N * LEVELS,) PIXEL: each colour blended over the background at every
    coverage level; level LEVELS - 1 is the exact colour, level 0 the background."""
    bg = np.asarray(BACKGROUND_RGB, dtype=np.int32)
    levels = np.arange(LEVELS, dtype=np.int32)[None, :, None]  # (1, L, 1)
    table = bg + (colors.astype(np.int32)[:, None, :] - bg) * levels // (LEVELS - 1)  # (N, L, 3)
    return np.ascontiguousarray(table.astype(np.uint8)).reshape(-1, 3).view(PIXEL).ravel()
