"use strict";
// attnviz pages, part 1: pure functions (decoding, weight normalisation, colours, the pages' geometry and playback),
// the one home of these calculations for the viewer (viewer.html) and the comparison (compare.html). No DOM here.
// The normalisation is a JavaScript copy of attnviz.render.colors.normalise (the page runs offline, without
// Python; tests/test_viewer_browser.py and tests/test_compare_outputs.py check that both agree): clip at 0,
// renormalise to sum 1, min-max scale, then w ** gamma. "global" takes min and max over every step of the layer;
// "log" places log10 of the weights on a window of `decades` decades (the payload's settings.log_decades, the
// MP4's render.log_decades) below the step's largest weight (gamma does not apply).
const attnvizCore = (() => {
  const EPS = 1e-12;  // a smaller span counts as constant: every weight maps to 0
  const PLAY_MS = 250;  // one step per this many milliseconds while playing
  const GRID_RGBA = "rgba(255,255,255,0.35)";  // the cell grid's lines over an image
  let halfTable = null;

  function bytesFromBase64(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function halfToFloat() {  // (65536,) every float16 bit pattern as a float
    if (halfTable) return halfTable;
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 31, mant = h & 1023;
      if (exp === 0) halfTable[h] = sign * mant * 2 ** -24;
      else if (exp === 31) halfTable[h] = mant ? NaN : sign * Infinity;
      else halfTable[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
    }
    return halfTable;
  }

  // Float16 rows (little endian, base64), steps back to back: step t holds counts[t] values. The viewer's step t
  // holds its P + t keys (P = prompt length: see triangle), the comparison's the shown keys step t reaches.
  function decodeRows(b64, counts) {
    const bytes = bytesFromBase64(b64), table = halfToFloat(), view = new DataView(bytes.buffer);
    const flat = new Float32Array(bytes.length / 2);
    for (let i = 0; i < flat.length; i++) flat[i] = table[view.getUint16(2 * i, true)];
    const rows = [];
    let at = 0;
    for (const n of counts) { rows.push(flat.subarray(at, at + n)); at += n; }
    return rows;
  }

  function triangle(promptLen, nSteps) { return Array.from({ length: nSteps }, (_, t) => promptLen + t); }

  // An image's cells -> sequence positions, raster order (-1: a cell without a token), from the payload's runs
  // [[first, count], ...]: the positions the MP4 reads each cell from (ImageGeometry.cell_weights). Cell tokens
  // need not be one run: LLaVA-NeXT puts a newline token after every row, tiled families (InternVL, Idefics3)
  // give each tile its own block and add a thumbnail / global image whose tokens have no cell.
  function cellMap(runs) {
    const out = [];
    for (const [first, count] of runs) for (let k = 0; k < count; k++) out.push(first >= 0 ? first + k : -1);
    return Int32Array.from(out);
  }

  function renormalized(values) {  // clip at 0, NaN -> 0, sum to 1 (when the sum is positive)
    const w = Float64Array.from(values, (v) => (v > 0 ? v : 0));
    let total = 0;
    for (const v of w) total += v;
    if (total > 0) for (let i = 0; i < w.length; i++) w[i] /= total;
    return w;
  }

  function range(w) {
    let lo = Infinity, hi = -Infinity;
    for (const v of w) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return [lo, hi];
  }

  function scaleToUnit(w, lo, hi, gamma) {
    const out = new Float64Array(w.length), span = hi - lo;
    if (!(span > EPS)) return out;
    for (let i = 0; i < w.length; i++) out[i] = Math.min(1, Math.max(0, (w[i] - lo) / span)) ** gamma;
    return out;
  }

  function logScale(w, decades) {  // log10(w / max) on [-decades, 0] -> 0..1 (a zero weight: 0)
    const out = new Float64Array(w.length), [, top] = range(w);
    if (!(top > 0)) return out;
    for (let i = 0; i < w.length; i++) {
      const v = w[i] > 0 ? (Math.log10(w[i] / top) + decades) / decades : 0;
      out[i] = Math.min(1, Math.max(0, v));
    }
    return out;
  }

  // values: raw weights of the shown, not-left-out items; mode step | global (globalRange: [lo, hi], see
  // globalRange) | log (decades: the payload's settings.log_decades)
  function normalize(values, mode, gamma, globalRange, decades) {
    if (values.length === 0) return new Float64Array(0);
    const w = renormalized(values);
    if (mode === "global") return scaleToUnit(w, globalRange[0], globalRange[1], gamma);
    if (mode === "log") return logScale(w, decades);
    const [lo, hi] = range(w);
    return scaleToUnit(w, lo, hi, gamma);
  }

  // [lo, hi] of the renormalised weights over every step; selectAt(t) -> the indices into rows[t] used at step t
  function globalRange(rows, selectAt) {
    let lo = Infinity, hi = -Infinity;
    rows.forEach((row, t) => {
      const positions = selectAt(t);
      if (positions.length === 0) return;
      const [a, b] = range(renormalized(Array.from(positions, (p) => row[p])));
      lo = Math.min(lo, a); hi = Math.max(hi, b);
    });
    return Number.isFinite(lo) ? [lo, hi] : [0, 0];
  }

  function colorOf(lut, v) {  // the 256-entry table lookup the video's panels do (FrameRenderer)
    const n = lut.length / 3, i = Math.min(n - 1, Math.max(0, Math.round(v * (n - 1))));
    return [lut[3 * i], lut[3 * i + 1], lut[3 * i + 2]];
  }

  function shares(row, kinds) {  // share of the row on image / text / special positions
    const sums = { i: 0, t: 0, s: 0 };
    let total = 0;
    for (let p = 0; p < row.length; p++) {
      const v = row[p] > 0 ? row[p] : 0;
      sums[kinds[p]] += v; total += v;
    }
    return total > 0 ? { image: sums.i / total, text: sums.t / total, special: sums.s / total }
      : { image: 0, text: 0, special: 0 };
  }

  function maskedShare(row, flags, mask) {  // share of the row on positions whose sink flags meet mask
    let hit = 0, total = 0;
    for (let p = 0; p < row.length; p++) {
      const v = row[p] > 0 ? row[p] : 0;
      total += v;
      if (flags[p] & mask) hit += v;
    }
    return total > 0 ? hit / total : 0;
  }

  // Token text as shown: tabs as four spaces, control characters dropped except newlines.
  function displayText(text) {
    return text.replace(/\t/g, "    ").replace(/[\u2028\u2029]/g, "\n")
      .replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2060\ufeff]/g, "");
  }

  function quoted(text) { return JSON.stringify(text.length > 60 ? text.slice(0, 59) + "…" : text); }

  // A token span's classes: its kind (text / special), blank ones marked (nl / ws), its answer segment if any
  function tokenClass(shown, kind, segment) {
    const blank = shown.trim() ? "" : shown.includes("\n") ? " nl" : " ws";
    return `tok k-${kind}${blank}${segment ? ` seg-${segment}` : ""}`;
  }

  // step -> the answer segment it lies in (null: none), from the payload's [{name, first, last}]
  function segmentSteps(segments, nSteps) {
    const out = new Array(nSteps).fill(null);
    segments.forEach((s) => { for (let t = s.first; t <= s.last; t++) out[t] = s.name; });
    return out;
  }

  // A segment's place on the step bar: [left, width] in percent
  function segmentExtent(s, nSteps) { return [(100 * s.first) / nSteps, (100 * (s.last - s.first + 1)) / nSteps]; }

  // n cells over length pixels: the n + 1 cell edges, whole pixels
  function edges(n, length) { return Array.from({ length: n + 1 }, (_, i) => Math.round((i * length) / n)); }

  // An image's grid on a width × height canvas: the tints of its cells, [[x, y, w, h], "rgba(…)"] for every cell
  // k (raster order) that colourAt(k) gives an [R, G, B] (null: no tint), and the inner grid lines as
  // [x0, y0, x1, y1] (on half pixels, so a 1-px line stays sharp)
  function cellTints(geo, width, height, colourAt, alpha) {
    const xs = edges(geo.grid_w, width), ys = edges(geo.grid_h, height), out = [];
    for (let r = 0; r < geo.grid_h; r++) {
      for (let c = 0; c < geo.grid_w; c++) {
        const rgb = colourAt(r * geo.grid_w + c);
        if (rgb) out.push([[xs[c], ys[r], xs[c + 1] - xs[c], ys[r + 1] - ys[r]], `rgba(${rgb.join(",")},${alpha})`]);
      }
    }
    return out;
  }
  function gridLines(geo, width, height) {
    const xs = edges(geo.grid_w, width).slice(1, -1), ys = edges(geo.grid_h, height).slice(1, -1);
    return [...xs.map((x) => [x + 0.5, 0, x + 0.5, height]), ...ys.map((y) => [0, y + 0.5, width, y + 0.5])];
  }

  // The cell [row, column] under a point (x, y) of a grid drawn in box {left, top, width, height}
  function cellAt(geo, box, x, y) {
    const c = Math.min(geo.grid_w - 1, Math.floor(((x - box.left) / box.width) * geo.grid_w));
    const r = Math.min(geo.grid_h - 1, Math.floor(((y - box.top) / box.height) * geo.grid_h));
    return [r, c];
  }

  // [left, top] of a w × h tooltip beside the point (x, y), kept inside a view of viewW × viewH
  function tipPlace(x, y, w, h, viewW, viewH) {
    return [Math.min(x + 14, viewW - w - 4), Math.min(y + 14, viewH - h - 4)];
  }

  // Play / pause through steps 0..nSteps-1: step() reads the step shown, show(t) shows step t, playing(on) is told
  // when playing starts or stops. Playing from the last step starts over; it stops at the last step.
  function player(nSteps, step, show, playing) {
    let timer = null;
    const stop = () => { clearInterval(timer); timer = null; playing(false); };
    function start() {
      if (step() >= nSteps - 1) show(0);
      playing(true);
      timer = setInterval(() => (step() >= nSteps - 1 ? stop() : show(step() + 1)), PLAY_MS);
    }
    return { toggle: () => (timer === null ? start() : stop()), stop };
  }

  return { bytesFromBase64, decodeRows, triangle, cellMap, normalize, globalRange, colorOf, shares, maskedShare,
    displayText, quoted, tokenClass, segmentSteps, segmentExtent, cellTints, gridLines, cellAt, tipPlace,
    player, GRID_RGBA };
})();
