// attnviz viewer, part 2: the page (DOM helpers shared with the comparison: attnvizPageUi, page_ui.js). Token text
// only ever enters the DOM through textContent.
(() => {
  const core = attnvizCore, ui = attnvizPageUi, video = attnvizVideo;
  const D = JSON.parse(document.getElementById("attnviz-data").textContent);
  const $ = (id) => document.getElementById(id);
  const SINK_BITS = { special: 1, first: 2, system: 4 };
  const KIND_NAMES = { t: "text", i: "image", s: "special" };
  const MIN_SIDE = 448;  // an image's longer side is drawn at least this many pixels
  const P = D.prompt_len, T = D.n_steps, kinds = D.kinds;
  const sinks = core.bytesFromBase64(D.sinks);
  const luts = Object.fromEntries(Object.entries(D.colormaps).map(([k, v]) => [k, core.bytesFromBase64(v)]));
  const decoded = new Map();  // layer -> rows, decoded on first use
  const segmentOf = core.segmentSteps(D.segments, T);
  // every cell's sequence position (the MP4's): cell tokens are not one run for every family (core.cellMap)
  D.images.forEach((g) => { g.cellPos = core.cellMap(g.cells); });
  const imagePositionsAll = D.images.flatMap((g) => Array.from(g.cellPos).filter((p) => p >= 0));
  const S = D.settings;
  const state = { step: 0, layer: S.layer, colormap: S.colormap, normalization: S.normalization, gamma: S.gamma,
    exclude: new Set(S.exclude), wholePrompt: false };
  const spans = new Map();  // position -> token span
  const views = [];  // one per image or video: {geo, canvas, ctx, img, loaded, video?}
  let globalCache = { key: null };

  function rows() {
    if (!decoded.has(state.layer)) {
      const entry = D.layers.find((l) => l.layer === state.layer);
      decoded.set(state.layer, core.decodeRows(entry.rows, core.triangle(P, T)));
    }
    return decoded.get(state.layer);
  }
  function excludeMask() { let m = 0; for (const name of state.exclude) m |= SINK_BITS[name] || 0; return m; }
  function panelStart() { return state.wholePrompt ? 0 : Math.min(D.text_start, P); }
  function textPositions(t) {  // what the text scale covers at step t: shown, already written, not left out
    const out = [], mask = excludeMask();
    for (let p = panelStart(); p < P + t; p++) if (kinds[p] !== "i" && !(sinks[p] & mask)) out.push(p);
    return out;
  }
  function imagePositions() { const mask = excludeMask(); return imagePositionsAll.filter((p) => !(sinks[p] & mask)); }
  function globalRangeFor(which) {
    const key = [state.layer, excludeMask(), state.wholePrompt].join();
    if (globalCache.key !== key) {
      const img = imagePositions();
      globalCache = { key, text: core.globalRange(rows(), textPositions), image: core.globalRange(rows(), () => img) };
    }
    return globalCache[which];
  }
  function scaled(row, positions, which) {  // position -> colour-scale value in 0..1
    const range = state.normalization === "global" ? globalRangeFor(which) : null;
    const values = core.normalize(Array.from(positions, (p) => row[p]), state.normalization, state.gamma, range,
      S.log_decades);
    return new Map(positions.map((p, i) => [p, values[i]]));
  }
  const videoName = (g) => (video.isVideo(g) ? `video ${g.video + 1} · ` : "");

  function buildText() {
    const box = $("text"), frag = document.createDocumentFragment();
    for (let p = 0; p < D.texts.length; p++) {
      const image = D.images.find((g) => g.token_start === p);
      if (image) {
        const ref = document.createElement("span");
        ref.className = "img-ref"; ref.dataset.from = p;
        ref.textContent = `[${videoName(image)}${image.label}: ${image.grid_w}×${image.grid_h} cells]`;
        frag.append(ref);
      }
      if (kinds[p] === "i") continue;
      const span = ui.tokenSpan(p, D.texts[p], KIND_NAMES[kinds[p]], p >= P ? segmentOf[p - P] : null);
      spans.set(p, span); frag.append(span);
    }
    box.append(frag);
    ui.tokenTips(box, tokenTip);
  }

  function buildImages() {
    const build = (geos) => (video.isVideo(geos[0]) ? buildVideo(geos) : buildImage(geos[0]));
    return Promise.all(video.groups(D.images).map(build));
  }

  function sized(view, img) { ui.fitCanvas(view.canvas, img, MIN_SIDE); view.loaded = true; }

  function buildImage(geo) {
    const view = { geo, img: Object.assign(new Image(), { src: geo.src }), loaded: false };
    const caption = `${geo.label} · ${geo.grid_w}×${geo.grid_h} cells · model input ${geo.pixel_w}×${geo.pixel_h} px`;
    Object.assign(view, ui.canvasFigure({ image: geo.index }, caption, (e) => cellTip(view, e)));
    views.push(view);
    return view.img.decode().then(() => sized(view, view.img));
  }

  function buildVideo(geos) {  // one figure for a video's pairs: the shown pair follows attention or the slider
    const imgs = geos.map((g) => Object.assign(new Image(), { src: g.src }));
    const view = { geo: geos[0], img: imgs[0], loaded: false };
    const pick = (k) => { view.video.pair = k; view.video.follow = false; render(); };
    const follow = (on) => { view.video.follow = on; render(); };
    const controls = video.controls(geos, pick, follow);
    Object.assign(view, ui.canvasFigure({ video: geos[0].video }, "", (e) => cellTip(view, e), controls.box));
    view.video = { geos, imgs, cap: view.cap, pair: 0, follow: true, ui: controls };
    views.push(view);
    return Promise.all(imgs.map((im) => im.decode())).then(() => sized(view, imgs[0]));
  }

  function showPair(view, row) {  // the video's pair for this step, its caption, slider and bars
    const v = view.video, values = video.masses(row, v.geos);
    if (v.follow) v.pair = video.strongest(values);
    view.geo = v.geos[v.pair]; view.img = v.imgs[v.pair];
    v.cap.textContent = `${videoName(view.geo)}${view.geo.label} · ${view.geo.grid_w}×${view.geo.grid_h} cells`;
    v.ui.update(v.pair, values, v.follow);
  }

  function drawImages(row, lut) {
    const scale = scaled(row, imagePositions(), "image");
    for (const view of views) {
      if (!view.loaded) continue;
      if (view.video) showPair(view, row);
      const colourAt = (k) => {  // left out of the scale, or no token: no tint
        const v = scale.get(view.geo.cellPos[k]);
        return v === undefined ? null : core.colorOf(lut, v);
      };
      ui.drawCells(view, colourAt, S.tint_alpha, S.grid_lines);
    }
  }

  function weightLines(p) {
    const cur = P + state.step;
    if (p === cur) return ["being written at this step (not a key of its own row)"];
    if (p > cur) return ["written at a later step (not a key yet)"];
    const row = rows()[state.step], total = row.reduce((a, v) => a + (v > 0 ? v : 0), 0);
    const lines = [`weight ${row[p].toPrecision(4)} (${((100 * row[p]) / (total || 1)).toPrecision(3)}% of the row)`];
    lines.push(sinks[p] & excludeMask() ? "left out of the colour scale" : "");
    return lines.filter(Boolean);
  }

  function tokenTip(p) {
    const seg = p >= P ? segmentOf[p - P] : null;
    return [`token ${core.quoted(D.texts[p])}`,
      `kind ${KIND_NAMES[kinds[p]]} · position ${p}${p >= P ? ` · step ${p - P + 1}` : " · prompt"}`,
      ...weightLines(p), seg ? `inside <${seg}>` : ""].filter(Boolean);
  }

  function cellTip(view, e) {
    const { geo, canvas } = view, [r, c] = core.cellAt(geo, canvas.getBoundingClientRect(), e.clientX, e.clientY);
    const p = geo.cellPos[r * geo.grid_w + c], where = `${videoName(geo)}${geo.label} · cell row ${r}, column ${c}`;
    return p < 0 ? [`${where} · no token`] : [`${where} · position ${p}`, ...weightLines(p)];
  }

  function render() {
    const t = state.step, row = rows()[t], cur = P + t, lut = luts[state.colormap], mask = excludeMask();
    const textScale = scaled(row, textPositions(t), "text"), start = panelStart();
    for (const [p, span] of spans) {
      const colour = textScale.has(p) ? core.colorOf(lut, textScale.get(p)) : null;
      ui.markToken(span, p, cur, { hidden: p < start, excluded: Boolean(sinks[p] & mask), colour });
    }
    document.querySelectorAll(".img-ref").forEach((el) => { el.hidden = Number(el.dataset.from) < start; });
    drawImages(row, lut);
    renderHeader(t, row, mask, lut);
    ui.keepInView($("text"), spans.get(cur));
  }

  function renderHeader(t, row, mask, lut) {
    ui.stepHeader(t, T, D.texts[P + t], segmentOf[t], lut);
    const s = core.shares(row, kinds), pct = (v) => `${(100 * v).toFixed(1)}%`;
    $("shares").textContent =
      `share of this row: image ${pct(s.image)} · text ${pct(s.text)} · special ${pct(s.special)}`;
    $("excluded").textContent =
      mask ? `left out of the scale: ${pct(core.maskedShare(row, sinks, mask))} of the row` : "";
  }

  function setStep(t) { state.step = Math.max(0, Math.min(T - 1, t)); render(); }

  function buildControls() {
    ui.stepControls(D, () => state.step, setStep);
    const layers = D.layers.map((l) => [l.layer, `layer ${l.layer}`]);
    fillSelect($("layer"), layers, state.layer, (v) => { state.layer = Number(v); });
    $("layer-box").hidden = D.layers.length < 2;
    fillSelect($("colormap"), Object.keys(luts).map((k) => [k, k]), state.colormap, (v) => { state.colormap = v; });
    const norm = $("normalization"), gamma = $("gamma");
    norm.value = state.normalization; gamma.value = String(state.gamma); gamma.disabled = state.normalization === "log";
    norm.addEventListener("change", () => {
      state.normalization = norm.value; gamma.disabled = norm.value === "log"; render();
    });
    gamma.addEventListener("input", () => {
      if (Number(gamma.value) > 0) { state.gamma = Number(gamma.value); render(); }
    });
    document.querySelectorAll(".exclude input").forEach((box) => {
      box.checked = state.exclude.has(box.value);
      box.addEventListener("change", () => { state.exclude[box.checked ? "add" : "delete"](box.value); render(); });
    });
    $("whole-prompt").addEventListener("change", (e) => { state.wholePrompt = e.target.checked; render(); });
    const left = D.left_out_layers;
    $("left-out").textContent = left.length ? `layers not in this page (size): ${left.join(", ")}` : "";
  }

  function fillSelect(select, options, value, onChange) {
    for (const [v, text] of options) {
      const opt = document.createElement("option"); opt.value = String(v); opt.textContent = text; select.append(opt);
    }
    select.value = String(value);
    select.addEventListener("change", () => { onChange(select.value); render(); });
  }

  buildControls();
  buildText();
  window.attnviz = { core, data: D, state, render, rows, setStep, views };
  buildImages().then(() => { render(); document.body.dataset.ready = "1"; });
})();
