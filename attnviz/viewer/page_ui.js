// attnviz step pages, DOM part: the helpers the viewer (viewer_ui.js) and the comparison (compare.js) share, over
// the elements both templates hold (#title, #play, #slider, #segment-bar, #step-label, #current-token,
// #segment-label, #legend-bar, #images, #tip). Loaded after attnvizCore (viewer_core.js), before the page's own
// script. Token text only ever enters the DOM through textContent.
const attnvizPageUi = (() => {
  const core = attnvizCore;
  const $ = (id) => document.getElementById(id);
  const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

  function showTip(lines, e) {
    const tip = $("tip");
    tip.textContent = lines.join("\n"); tip.hidden = false;
    const [left, top] = core.tipPlace(e.clientX, e.clientY, tip.offsetWidth, tip.offsetHeight, innerWidth, innerHeight);
    tip.style.left = `${left}px`; tip.style.top = `${top}px`;
  }
  function hideTip() { $("tip").hidden = true; }

  // A token's span at position p: its shown text, its classes (kind, blank, answer segment)
  function tokenSpan(p, text, kind, segment) {
    const span = document.createElement("span"), shown = core.displayText(text);
    span.className = core.tokenClass(shown, kind, segment);
    span.dataset.pos = p;
    span.textContent = shown;
    return span;
  }

  // Hovering a token span in box shows tipOf(its position)
  function tokenTips(box, tipOf) {
    box.addEventListener("mousemove", (e) => {
      const span = e.target.closest(".tok");
      if (span) showTip(tipOf(Number(span.dataset.pos)), e); else hideTip();
    });
    box.addEventListener("mouseleave", hideTip);
  }

  // A token span's look at the step writing position cur: hidden, left out of the scale, its colour (null: none)
  function markToken(span, p, cur, { hidden, excluded, colour }) {
    span.hidden = hidden;
    span.classList.toggle("current", p === cur);
    span.classList.toggle("future", p > cur);
    span.classList.toggle("excluded", p < cur && excluded);
    span.style.color = colour ? rgb(colour) : "";
  }

  // Scroll the text panel (only it) so the current token stays visible
  function keepInView(box, span) {
    if (!span || span.offsetParent !== box) return;
    const top = span.offsetTop, bottom = top + span.offsetHeight;
    if (top < box.scrollTop || bottom > box.scrollTop + box.clientHeight) box.scrollTop = top - box.clientHeight / 2;
  }

  // A figure in #images: a caption, a canvas (data-* from data) and extra nodes; hovering the canvas shows
  // tipAt(event). -> {canvas, ctx, cap}
  function canvasFigure(data, caption, tipAt, ...extra) {
    const fig = document.createElement("figure"), cap = document.createElement("figcaption");
    const canvas = document.createElement("canvas");
    cap.textContent = caption; Object.assign(canvas.dataset, data);
    fig.append(cap, canvas, ...extra); $("images").append(fig);
    canvas.addEventListener("mousemove", (e) => showTip(tipAt(e), e));
    canvas.addEventListener("mouseleave", hideTip);
    return { canvas, ctx: canvas.getContext("2d"), cap };
  }

  // The canvas at its picture's size and proportions (the payload's picture keeps the viewed region's, as the MP4's
  // tile does), small pictures drawn larger by a whole multiple so cell edges stay sharp
  function fitCanvas(canvas, img, minSide) {
    const k = Math.max(1, Math.ceil(minSide / Math.max(img.naturalWidth, img.naturalHeight)));
    canvas.width = k * img.naturalWidth; canvas.height = k * img.naturalHeight;
  }

  // A view's picture (view.img) over its whole canvas, the cells colourAt(k) gives a colour tinted, grid on top
  function drawCells(view, colourAt, alpha, gridLines) {
    const { geo, canvas, ctx, img } = view;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    for (const [rect, fill] of core.cellTints(geo, canvas.width, canvas.height, colourAt, alpha)) {
      ctx.fillStyle = fill; ctx.fillRect(...rect);
    }
    if (!gridLines) return;
    ctx.strokeStyle = core.GRID_RGBA; ctx.lineWidth = 1; ctx.beginPath();
    for (const [x0, y0, x1, y1] of core.gridLines(geo, canvas.width, canvas.height)) {
      ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
    }
    ctx.stroke();
  }

  // The title, the step slider, the play button (core.player) and the answer segments' bar; -> the player
  function stepControls(D, step, setStep) {
    const T = D.n_steps;
    $("title").textContent = D.title || `sample ${D.sample_id}`;
    const slider = $("slider"); slider.max = String(T - 1);
    slider.addEventListener("input", () => setStep(Number(slider.value)));
    const player = core.player(T, step, setStep, (on) => { $("play").textContent = on ? "❚❚ pause" : "▶ play"; });
    $("play").addEventListener("click", player.toggle);
    D.segments.forEach((s) => {
      const bar = document.createElement("span"), [left, width] = core.segmentExtent(s, T);
      bar.className = s.name; bar.title = `<${s.name}>`; bar.style.left = `${left}%`; bar.style.width = `${width}%`;
      $("segment-bar").append(bar);
    });
    return player;
  }

  // The header's step, token being written, its answer segment, the slider's place and the legend's colours
  function stepHeader(t, T, text, segment, lut) {
    $("step-label").textContent = `${t + 1}/${T}`;
    $("current-token").textContent = core.quoted(text);
    const label = $("segment-label");
    label.textContent = segment ? `<${segment}>` : ""; label.className = `segment-label ${segment || ""}`;
    $("slider").value = String(t);
    const stops = Array.from({ length: 9 }, (_, i) => rgb(core.colorOf(lut, i / 8)));
    $("legend-bar").style.background = `linear-gradient(to right, ${stops.join(",")})`;
  }

  return { showTip, hideTip, tokenSpan, tokenTips, markToken, keepInView, canvasFigure, fitCanvas, drawCells,
    stepControls, stepHeader, rgb };
})();
