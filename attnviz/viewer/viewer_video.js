// attnviz viewer, video part: a video's temporal patches (pairs of frames, one image entry each) share one figure
// with a frame slider; "follow attention" shows, at each step, the pair with the most attention (as the MP4 does).
const attnvizVideo = (() => {
  const isVideo = (g) => g.video !== undefined && g.video !== null;

  function groups(images) {  // [[geometry]]: each image alone, a video's patches (consecutive entries) together
    const out = [];
    for (const g of images) {
      const last = out[out.length - 1];
      if (isVideo(g) && last && isVideo(last[0]) && last[0].video === g.video) last.push(g); else out.push([g]);
    }
    return out;
  }

  // each pair's attention: the sum of its cells' weights in the row (g.cellPos: each cell's position, -1: none)
  function masses(row, geos) {
    return geos.map((g) => {
      let sum = 0;
      for (const p of g.cellPos) { const v = p >= 0 ? row[p] : 0; if (v > 0) sum += v; }
      return sum;
    });
  }

  function strongest(values) {  // index of the largest (ties: the earliest)
    let best = 0;
    values.forEach((v, i) => { if (v > values[best]) best = i; });
    return best;
  }

  function controls(geos, onPick, onFollow) {  // the slider, the follow switch and one bar per pair
    const box = document.createElement("div"), follow = document.createElement("input");
    box.className = "video-controls";
    const followLabel = document.createElement("label");
    follow.type = "checkbox"; follow.checked = true;
    followLabel.append(follow, " follow attention");
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = "0"; slider.max = String(geos.length - 1); slider.value = "0";
    slider.className = "frame-slider"; slider.setAttribute("aria-label", "frame pair");
    const strip = document.createElement("div");
    strip.className = "pair-strip";
    const bars = geos.map((g, k) => {
      const bar = document.createElement("span");
      bar.title = g.label; bar.addEventListener("click", () => onPick(k));
      strip.append(bar); return bar;
    });
    slider.addEventListener("input", () => onPick(Number(slider.value)));
    follow.addEventListener("change", () => onFollow(follow.checked));
    box.append(slider, followLabel, strip);
    function update(pair, values, following) {
      slider.value = String(pair); follow.checked = following;
      const top = Math.max(...values, 0);
      bars.forEach((bar, k) => {
        bar.style.height = `${top > 0 ? Math.max(4, (100 * values[k]) / top) : 4}%`;
        bar.classList.toggle("shown", k === pair);
      });
    }
    return { box, update };
  }

  return { isVideo, groups, masses, strongest, controls };
})();
