"use strict";
// attnviz compare page, part 1: the comparison's own pure function, the diverging scale (a JavaScript copy of
// attnviz.comparison.diverging_positions; tests/test_compare_outputs.py checks the page's colours against it).
// Decoding, the single-run normalisation and colours are the viewer's (attnvizCore, viewer_core.js, loaded first).
const attnvizCompareCore = (() => {
  // A difference d on the symmetric scale [-s, s] -> 0..1 (0.5: no difference), the magnitude lifted by gamma
  function diverging(d, s, gamma) {
    if (!(s > 0)) return 0.5;
    return 0.5 + 0.5 * Math.sign(d) * Math.min(1, Math.abs(d) / s) ** gamma;
  }

  return { diverging };
})();
