// attnviz compare page, part 2: the page (DOM helpers shared with the viewer: attnvizPageUi, page_ui.js). Token text
// only ever enters the DOM through textContent.
(() => {
  const core = attnvizCore, ui = attnvizPageUi, { diverging } = attnvizCompareCore;
  const MIN_SIDE = 384;  // an image's longer side is drawn at least this many pixels
  const D = JSON.parse(document.getElementById("attnviz-data").textContent);
  const $ = (id) => document.getElementById(id);
  const P = D.prompt_len, T = D.n_steps, S = D.settings, models = D.models;
  const luts = { model: core.bytesFromBase64(D.colormaps.model), diverging: core.bytesFromBase64(D.colormaps.diverging) };
  const keyIndex = new Map(D.keys.map((p, i) => [p, i]));
  const sinks = new Set(D.sinks);  // key indices
  const counts = Array.from({ length: T }, (_, t) => D.keys.filter((p) => p < P + t).length);
  const textKeys = D.text_keys.map((p) => keyIndex.get(p)).map((k, i) => ({ pos: D.text_keys[i], k }));
  const imageKeys = D.images.flatMap((g) => g.cells.filter((p) => p >= 0).map((p) => keyIndex.get(p)));
  const segmentOf = core.segmentSteps(D.segments, T);
  const state = { step: 0, layer: S.layer, model: 0, difference: false, normalization: S.normalization,
    diffScale: "global" };
  const decoded = new Map(), cache = new Map(), spans = new Map(), views = [];
  const pct = (v) => `${(100 * v).toFixed(1)}%`;

  function rows(m, layer = state.layer) {  // model m's rows at a reference layer, decoded on first use
    const key = `${m}/${layer}`;
    if (!decoded.has(key)) decoded.set(key, core.decodeRows(models[m].rows[D.layers.indexOf(layer)], counts));
    return decoded.get(key);
  }
  const reachable = (t) => (item) => item.pos < P + t && item.k !== undefined && !sinks.has(item.k);
  const textAt = (t) => textKeys.filter(reachable(t)).map((item) => item.k);
  const imageShown = imageKeys.filter((k) => k !== undefined && !sinks.has(k));
  const keysAt = (which) => (t) => (which === "text" ? textAt(t) : imageShown);  // the key indices shown at step t
  function memo(key, make) { if (!cache.has(key)) cache.set(key, make()); return cache.get(key); }

  function modelValues(m, t, which) {  // key index -> position on the model colour map
    const ks = keysAt(which)(t), row = rows(m)[t];
    const range = state.normalization === "global"
      ? memo(`range/${m}/${state.layer}/${which}`, () => core.globalRange(rows(m), keysAt(which))) : null;
    const v = core.normalize(ks.map((k) => row[k]), state.normalization, S.gamma, range, S.log_decades);
    return new Map(ks.map((k, i) => [k, v[i]]));
  }
  function diffAt(m, t, k) { return rows(m)[t][k] - rows(0)[t][k]; }
  function diffScale(m, t, which) {  // s of the symmetric scale: max |d| over the shown keys (all steps or this one)
    const over = (s) => keysAt(which)(s).reduce((a, k) => Math.max(a, Math.abs(diffAt(m, s, k))), 0);
    if (state.diffScale === "step") return over(t);
    return memo(`diff/${m}/${state.layer}/${which}`, () => Array.from({ length: T }, (_, s) => over(s))
      .reduce((a, b) => Math.max(a, b), 0));
  }
  function diffValues(m, t, which) {
    const ks = keysAt(which)(t), s = diffScale(m, t, which);
    return new Map(ks.map((k) => [k, diverging(diffAt(m, t, k), s, S.gamma)]));
  }
  function values(t, which) {
    return state.difference ? diffValues(state.model, t, which) : modelValues(state.model, t, which);
  }
  const lut = () => (state.difference ? luts.diverging : luts.model);

  function buildText() {
    const box = $("text"), frag = document.createDocumentFragment();
    D.text_keys.forEach((p, i) => {
      const span = ui.tokenSpan(p, D.texts[i], D.kinds[i] === "s" ? "special" : "text",
        p >= P ? segmentOf[p - P] : null);
      spans.set(p, span); frag.append(span);
    });
    box.append(frag);
    ui.tokenTips(box, (p) => keyTip(p, `token ${core.quoted(D.texts[D.text_keys.indexOf(p)])}`));
  }

  function buildImages() {
    return Promise.all(D.images.map((geo) => {
      const view = { geo, img: Object.assign(new Image(), { src: geo.src }), loaded: false };
      const cellTip = (e) => {
        const [r, c] = core.cellAt(geo, view.canvas.getBoundingClientRect(), e.clientX, e.clientY);
        return keyTip(geo.cells[r * geo.grid_w + c], `image ${geo.index + 1} · cell row ${r}, column ${c}`);
      };
      const caption = `image ${geo.index + 1} · ${geo.grid_w}×${geo.grid_h} cells`;
      Object.assign(view, ui.canvasFigure({ image: geo.index }, caption, cellTip));
      views.push(view);
      return view.img.decode().then(() => { ui.fitCanvas(view.canvas, view.img, MIN_SIDE); view.loaded = true; });
    }));
  }

  function keyTip(pos, head) {
    const k = keyIndex.get(pos), t = state.step, lines = [head];
    if (k === undefined || pos >= P + t) return [...lines, "not a key of this step's row"];
    if (sinks.has(k)) lines.push("a sink: off the colour scale");
    models.forEach((m, i) => lines.push(`${m.label}: ${pct(rows(i)[t][k])} of its row off the sinks` +
      (i ? ` (${diffAt(i, t, k) >= 0 ? "+" : ""}${(100 * diffAt(i, t, k)).toFixed(2)} points)` : "")));
    return lines;
  }
  function drawImages(scale, table) {
    for (const view of views) {
      if (!view.loaded) continue;
      const colourAt = (cell) => {  // no token, or not a key of the page: no tint; a sink: grey
        const k = keyIndex.get(view.geo.cells[cell]);
        if (k === undefined) return null;
        return scale.has(k) ? core.colorOf(table, scale.get(k)) : D.excluded_rgb;
      };
      ui.drawCells(view, colourAt, S.tint_alpha, S.grid_lines);
    }
  }

  function render() {
    const t = state.step, cur = P + t, table = lut(), text = values(t, "text");
    for (const [p, span] of spans) {
      const k = keyIndex.get(p), colour = text.has(k) ? core.colorOf(table, text.get(k)) : null;
      ui.markToken(span, p, cur, { hidden: p < D.text_start, excluded: sinks.has(k), colour });
    }
    drawImages(values(t, "image"), table);
    renderHeader(t, table);
    ui.keepInView($("text"), spans.get(cur));
  }

  function renderHeader(t, table) {
    const m = state.model, ref = models[0].label;
    ui.stepHeader(t, T, D.texts[D.text_keys.indexOf(P + t)] ?? "", segmentOf[t], table);
    $("showing").textContent = state.difference ? `${models[m].label} − ${ref}` : models[m].label;
    const share = (i) => imageShown.reduce((a, k) => a + rows(i)[t][k], 0);
    $("shares").textContent = `image share off the sinks: ${models.map((x, i) => `${x.label} ${pct(share(i))}`).join(" · ")}`;
    const layerAt = D.layers.indexOf(state.layer), js = [];
    models.forEach((x, i) => {
      if (!i || (m && i !== m)) return;
      const v = x.js[layerAt][t], all = x.js[layerAt].filter((y) => y !== null);
      const mean = all.length ? all.reduce((a, b) => a + b, 0) / all.length : null;
      js.push(`${x.label} ${v === null ? "–" : v.toFixed(3)} (mean ${mean === null ? "–" : mean.toFixed(3)})`);
    });
    $("js").textContent = js.length ? `JS divergence of the image cells vs ${ref} at this step: ${js.join(" · ")}` : "";
    const [st, si] = state.difference ? [diffScale(m, t, "text"), diffScale(m, t, "image")] : [0, 0];
    $("legend-low").textContent = state.difference ? `less than ${ref}: −` : "low";
    $("legend-high").textContent = state.difference
      ? `+ more · scale ±${st.toPrecision(3)} text, ±${si.toPrecision(3)} image` : "high";
    $("norm-box").hidden = state.difference; $("diff-box").hidden = !state.difference;
    document.querySelectorAll("button.model").forEach((b) => b.setAttribute("aria-checked", String(Number(b.value) === m)));
    $("difference").checked = state.difference;
  }

  function setStep(t) { state.step = Math.max(0, Math.min(T - 1, t)); render(); }
  function setModel(m) {
    state.model = Math.max(0, Math.min(models.length - 1, m));
    if (state.model === 0) state.difference = false;  // the reference minus itself says nothing
    render();
  }
  function setDifference(on) {
    state.difference = Boolean(on) && models.length > 1;
    if (state.difference && state.model === 0) state.model = 1;
    render();
  }
  function setLayer(layer) { state.layer = Number(layer); render(); }
  let player = null;

  function buildControls() {
    player = ui.stepControls(D, () => state.step, setStep);
    models.forEach((m, i) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = "model"; b.value = String(i); b.setAttribute("role", "radio");
      b.textContent = i ? m.label : `${m.label} (reference)`;
      b.title = m.correct === null ? "" : (m.correct ? "answer right" : "answer wrong");
      b.addEventListener("click", () => setModel(i));
      $("model-buttons").append(b);
    });
    $("difference").addEventListener("change", (e) => setDifference(e.target.checked));
    const layer = $("layer");
    for (const a of D.layers) {
      const opt = document.createElement("option"), own = models.map((m) => m.layers[String(a)]);
      opt.value = String(a);
      opt.textContent = own.every((x) => x === a) ? `layer ${a}` : `layer ${a} (${own.join(" / ")})`;
      layer.append(opt);
    }
    layer.value = String(state.layer);
    $("layer-box").hidden = D.layers.length < 2;
    layer.addEventListener("change", () => setLayer(layer.value));
    $("normalization").value = state.normalization;
    $("normalization").addEventListener("change", (e) => { state.normalization = e.target.value; render(); });
    $("diff-scale").addEventListener("change", (e) => { state.diffScale = e.target.value; render(); });
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "SELECT" || e.target.tagName === "INPUT" && e.target.type !== "checkbox") return;
      const moves = { ArrowLeft: -1, ArrowRight: 1 };
      if (e.key in moves) setStep(state.step + moves[e.key]);
      else if (e.key === "Home") setStep(0);
      else if (e.key === "End") setStep(T - 1);
      else if (e.key === " ") player.toggle();
      else if (e.key === "d") setDifference(!state.difference);
      else if (/^[1-9]$/.test(e.key) && Number(e.key) <= models.length) setModel(Number(e.key) - 1);
      else return;
      e.preventDefault();
    });
  }

  buildControls();
  buildText();
  window.attnvizCompare = { core, data: D, state, render, rows, setStep, setModel, setDifference, setLayer };
  buildImages().then(() => { render(); document.body.dataset.ready = "1"; });
})();
