"use strict";
// attnviz compare page, part 1: pure functions (decoding, the single-run normalisation, the diverging scale).
// normalize() is a JavaScript copy of attnviz.render.colors.normalise, diverging() of
// attnviz.comparison.diverging_positions (tests/test_compare_outputs.py checks the page's colours against both).
const attnvizCompareCore = (() => {
  const EPS = 1e-12;  // a smaller span counts as constant: every weight maps to 0
  let halfTable = null;

  function bytesFromBase64(text) {
    const bin = atob(text), out = new Uint8Array(bin.length);
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

  // Step t holds counts[t] values (the keys it reaches), steps back to back.
  function decodeRows(b64, counts) {
    const bytes = bytesFromBase64(b64), table = halfToFloat(), view = new DataView(bytes.buffer);
    const flat = new Float32Array(bytes.length / 2);
    for (let i = 0; i < flat.length; i++) flat[i] = table[view.getUint16(2 * i, true)];
    const rows = [];
    let at = 0;
    for (const n of counts) { rows.push(flat.subarray(at, at + n)); at += n; }
    return rows;
  }

  function renormalized(values) {  // clip at 0, sum to 1 (when the sum is positive)
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

  // values: raw weights of the shown keys; mode step | global ([lo, hi] from globalRange) | log (decades)
  function normalize(values, mode, gamma, globalRange, decades) {
    const w = renormalized(values), out = new Float64Array(w.length);
    if (w.length === 0) return out;
    if (mode === "log") {
      const [, top] = range(w);
      if (!(top > 0)) return out;
      for (let i = 0; i < w.length; i++) {
        const v = w[i] > 0 ? (Math.log10(w[i] / top) + decades) / decades : 0;
        out[i] = Math.min(1, Math.max(0, v));
      }
      return out;
    }
    const [lo, hi] = mode === "global" ? globalRange : range(w);
    if (!(hi - lo > EPS)) return out;
    for (let i = 0; i < w.length; i++) out[i] = Math.min(1, Math.max(0, (w[i] - lo) / (hi - lo))) ** gamma;
    return out;
  }

  function globalRange(valuesPerStep) {  // [lo, hi] of the renormalised weights over every step
    let lo = Infinity, hi = -Infinity;
    for (const values of valuesPerStep) {
      if (values.length === 0) continue;
      const [a, b] = range(renormalized(values));
      lo = Math.min(lo, a); hi = Math.max(hi, b);
    }
    return Number.isFinite(lo) ? [lo, hi] : [0, 0];
  }

  // A difference d on the symmetric scale [-s, s] -> 0..1 (0.5: no difference), the magnitude lifted by gamma
  function diverging(d, s, gamma) {
    if (!(s > 0)) return 0.5;
    return 0.5 + 0.5 * Math.sign(d) * Math.min(1, Math.abs(d) / s) ** gamma;
  }

  function colorOf(lut, v) {  // the 256-entry table lookup the video's panels do
    const n = lut.length / 3, i = Math.min(n - 1, Math.max(0, Math.round(v * (n - 1))));
    return [lut[3 * i], lut[3 * i + 1], lut[3 * i + 2]];
  }

  function displayText(text) {  // tabs as four spaces, control characters dropped except newlines
    return text.replace(/\t/g, "    ").replace(/[\u2028\u2029]/g, "\n")
      .replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2060\ufeff]/g, "");
  }

  function quoted(text) { return JSON.stringify(text.length > 60 ? text.slice(0, 59) + "…" : text); }

  return { bytesFromBase64, decodeRows, normalize, globalRange, diverging, colorOf, displayText, quoted };
})();
