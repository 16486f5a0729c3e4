// attnviz compare page, part 2: the page. Token text only ever enters the DOM through textContent.
(() => {
  const core = attnvizCore, { diverging } = attnvizCompareCore;
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
  const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

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
      const span = document.createElement("span"), shown = core.displayText(D.texts[i]);
      const kind = D.kinds[i] === "s" ? "special" : "text";
      span.className = core.tokenClass(shown, kind, p >= P ? segmentOf[p - P] : null);
      span.dataset.pos = p;
      span.textContent = shown;
      spans.set(p, span); frag.append(span);
    });
    box.append(frag);
    box.addEventListener("mousemove", (e) => {
      const span = e.target.closest(".tok");
      if (span) showTip(keyTip(Number(span.dataset.pos), `token ${core.quoted(D.texts[D.text_keys.indexOf(Number(span.dataset.pos))])}`), e);
      else hideTip();
    });
    box.addEventListener("mouseleave", hideTip);
  }

  function buildImages() {
    return Promise.all(D.images.map((geo) => {
      const fig = document.createElement("figure"), cap = document.createElement("figcaption");
      cap.textContent = `image ${geo.index + 1} · ${geo.grid_w}×${geo.grid_h} cells`;
      const canvas = document.createElement("canvas");
      canvas.dataset.image = geo.index;
      const view = { geo, canvas, ctx: canvas.getContext("2d"), img: new Image(), loaded: false };
      fig.append(cap, canvas); $("images").append(fig); views.push(view);
      canvas.addEventListener("mousemove", (e) => {
        const [r, c] = core.cellAt(geo, canvas.getBoundingClientRect(), e.clientX, e.clientY);
        showTip(keyTip(geo.cells[r * geo.grid_w + c], `image ${geo.index + 1} · cell row ${r}, column ${c}`), e);
      });
      canvas.addEventListener("mouseleave", hideTip);
      view.img.src = geo.src;
      return view.img.decode().then(() => {
        const k = Math.max(1, Math.ceil(384 / Math.max(view.img.naturalWidth, view.img.naturalHeight)));
        canvas.width = k * view.img.naturalWidth; canvas.height = k * view.img.naturalHeight; view.loaded = true;
      });
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
  function showTip(lines, e) {
    const tip = $("tip");
    tip.textContent = lines.join("\n"); tip.hidden = false;
    const [left, top] = core.tipPlace(e.clientX, e.clientY, tip.offsetWidth, tip.offsetHeight, innerWidth, innerHeight);
    tip.style.left = `${left}px`; tip.style.top = `${top}px`;
  }
  function hideTip() { $("tip").hidden = true; }

  function drawImages(scale, table) {
    for (const { geo, canvas, ctx, img, loaded } of views) {
      if (!loaded) continue;
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      const colourAt = (cell) => {  // no token, or not a key of the page: no tint; a sink: grey
        const k = keyIndex.get(geo.cells[cell]);
        if (k === undefined) return null;
        return scale.has(k) ? core.colorOf(table, scale.get(k)) : D.excluded_rgb;
      };
      for (const [rect, fill] of core.cellTints(geo, canvas.width, canvas.height, colourAt, S.tint_alpha)) {
        ctx.fillStyle = fill; ctx.fillRect(...rect);
      }
      if (!S.grid_lines) continue;
      ctx.strokeStyle = core.GRID_RGBA; ctx.lineWidth = 1; ctx.beginPath();
      for (const [x0, y0, x1, y1] of core.gridLines(geo, canvas.width, canvas.height)) {
        ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
      }
      ctx.stroke();
    }
  }

  function render() {
    const t = state.step, cur = P + t, table = lut(), text = values(t, "text");
    for (const [p, span] of spans) {
      const k = keyIndex.get(p);
      span.hidden = p < D.text_start;
      span.classList.toggle("current", p === cur);
      span.classList.toggle("future", p > cur);
      span.classList.toggle("excluded", p < cur && sinks.has(k));
      span.style.color = text.has(k) ? rgb(core.colorOf(table, text.get(k))) : "";
    }
    drawImages(values(t, "image"), table);
    renderHeader(t, table);
    $("slider").value = String(t);
    const span = spans.get(cur), box = $("text");
    if (span && (span.offsetTop < box.scrollTop || span.offsetTop > box.scrollTop + box.clientHeight - 20)) {
      box.scrollTop = span.offsetTop - box.clientHeight / 2;
    }
  }

  function renderHeader(t, table) {
    const m = state.model, ref = models[0].label;
    $("step-label").textContent = `${t + 1}/${T}`;
    $("current-token").textContent = core.quoted(D.texts[D.text_keys.indexOf(P + t)] ?? "");
    const seg = segmentOf[t], label = $("segment-label");
    label.textContent = seg ? `<${seg}>` : ""; label.className = `segment-label ${seg || ""}`;
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
    const stops = Array.from({ length: 9 }, (_, i) => rgb(core.colorOf(table, i / 8)));
    $("legend-bar").style.background = `linear-gradient(to right, ${stops.join(",")})`;
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
  const player = core.player(T, () => state.step, setStep,
    (on) => { $("play").textContent = on ? "❚❚ pause" : "▶ play"; });

  function buildControls() {
    $("title").textContent = D.title || `sample ${D.sample_id}`;
    const slider = $("slider"); slider.max = String(T - 1);
    slider.addEventListener("input", () => setStep(Number(slider.value)));
    $("play").addEventListener("click", player.toggle);
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
    D.segments.forEach((s) => {
      const bar = document.createElement("span"), [left, width] = core.segmentExtent(s, T);
      bar.className = s.name; bar.title = `<${s.name}>`; bar.style.left = `${left}%`; bar.style.width = `${width}%`;
      $("segment-bar").append(bar);
    });
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
