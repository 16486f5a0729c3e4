"use strict";
// attnviz viewer, part 1: pure functions (decoding, weight normalisation, colours). No DOM here.
// The normalisation is a JavaScript copy of attnviz.render.colors.normalise (the page runs offline, without
// Python; tests/test_viewer_browser.py checks that both agree): clip at 0, renormalise to sum 1, min-max
// scale, then w ** gamma. "global" takes min and max over every step of the layer; "log" min-max scales log10
// of the weights per step, floored 4 decades under the step's largest weight (gamma does not apply).
const attnvizCore = (() => {
  const LOG_DECADES = 4;
  const EPS = 1e-12;  // a smaller span counts as constant: every weight maps to 0
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

  // Step t's row starts at t * P + t * (t - 1) / 2 and holds P + t keys (P = prompt length).
  function rowStart(t, promptLen) { return t * promptLen + (t * (t - 1)) / 2; }

  function decodeRows(b64, promptLen, nSteps) {
    const bytes = bytesFromBase64(b64), table = halfToFloat();
    const view = new DataView(bytes.buffer);
    const flat = new Float32Array(bytes.length / 2);
    for (let i = 0; i < flat.length; i++) flat[i] = table[view.getUint16(2 * i, true)];
    const rows = [];
    for (let t = 0; t < nSteps; t++) {
      const start = rowStart(t, promptLen);
      rows.push(flat.subarray(start, start + promptLen + t));
    }
    return rows;
  }

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

  // values: raw weights of the shown, not-left-out items; globalRange: [lo, hi] for "global" (see globalRange)
  function normalize(values, mode, gamma, globalRange) {
    if (values.length === 0) return new Float64Array(0);
    const w = renormalized(values);
    if (mode === "global") return scaleToUnit(w, globalRange[0], globalRange[1], gamma);
    if (mode === "log") {
      const [, hi] = range(w);
      if (!(hi > 0)) return new Float64Array(w.length);
      const floor = hi * 10 ** -LOG_DECADES;
      const logs = w.map((v) => Math.log10(Math.max(v, floor)));
      const [llo, lhi] = range(logs);
      return scaleToUnit(logs, llo, lhi, 1);
    }
    const [lo, hi] = range(w);
    return scaleToUnit(w, lo, hi, gamma);
  }

  // [lo, hi] of the renormalised weights over every step; selectAt(t) -> the positions used at step t
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

  return { bytesFromBase64, decodeRows, rowStart, cellMap, normalize, globalRange, colorOf, shares, maskedShare,
    displayText, quoted, LOG_DECADES };
})();
