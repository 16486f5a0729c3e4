// attnviz study report. Everything from the data (sample ids, model names, paths) enters the DOM through
// textContent; links are the page's own relative "./..." paths, images its own base64 PNGs.
(() => {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const $ = (id) => document.getElementById(id);
  const COLUMNS = [
    { key: "id", label: "sample" },
    { key: "model", label: "model" },
    { key: "correct", label: "correct" },
    { key: "layer", label: "layer", num: true },
    { key: "n_tokens", label: "answer tokens", num: true },
    { key: "image_share", label: "image share", num: true, digits: 3 },
    { key: "gt_share", label: "ground-truth share", num: true, digits: 3 },
    { key: "hit", label: "hit", num: true, digits: 3 },
    { key: null, label: "files" },
  ];
  const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
  const sorting = { key: null, dir: 1 };

  function el(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (className) e.className = className;
    return e;
  }

  function link(href, text) {
    // only the relative links the report wrote: never another scheme, whatever a path holds
    if (typeof href !== "string" || !href.startsWith("./")) return null;
    const a = el("a", text);
    a.href = href;
    return a;
  }

  function cellText(col, value) {
    if (value === null || value === undefined) return "";
    if (col.key === "correct") return value ? "yes" : "no";
    if (col.digits && typeof value === "number") return value.toFixed(col.digits);
    return String(value);
  }

  function header() {
    const s = D.summary;
    $("title").textContent = D.title;
    const models = s.models.map((m) => `${m.model} (${m.samples})`).join(", ");
    $("summary").textContent = `${s.runs} runs, ${s.samples} samples; ${s.correct} correct, ${s.incorrect} ` +
      `incorrect, ${s.unknown} not judged; models: ${models}.`;
    if (s.duplicates) {
      $("duplicates").hidden = false;
      $("duplicates").textContent = `${s.duplicates} ${s.duplicates === 1 ? "run" : "runs"} repeated another ` +
        "run's numbers (same model, sample and values, e.g. a layer sweep over one trace): in the table, but " +
        "counted once in the plots and the CSV.";
    }
    if (D.skipped.count) {
      $("skipped").hidden = false;
      $("skipped-count").textContent = `${D.skipped.count} metrics.json skipped (unreadable or another format)` +
        (D.skipped.count > D.skipped.shown.length ? `; the first ${D.skipped.shown.length}:` : ":");
      for (const s of D.skipped.shown) $("skipped-list").append(el("li", `${s.path}: ${s.why}`));
    }
    const csv = $("csv-link");
    csv.href = D.csv;
  }

  function plots() {
    for (const p of D.plots) {
      if (!BASE64.test(p.png)) continue;
      const fig = el("figure");
      fig.id = `plot-${p.id}`;
      const img = el("img");
      img.alt = p.title;
      img.src = `data:image/png;base64,${p.png}`;
      const cap = el("figcaption", `${p.caption} `);
      const file = link(p.file, `(${p.file.slice(2)})`);
      if (file) cap.append(file);
      fig.append(img, cap);
      $("plots").append(fig);
    }
  }

  function compare(a, b) {
    const x = a[sorting.key], y = b[sorting.key];
    const xm = x === null || x === undefined, ym = y === null || y === undefined;
    if (xm || ym) return xm === ym ? a.__i - b.__i : xm ? 1 : -1;  // blanks last, either direction
    let c;
    if (typeof x === "string" && typeof y === "string") c = x.localeCompare(y, undefined, { numeric: true });
    else c = (x > y) - (x < y);
    return c ? sorting.dir * c : a.__i - b.__i;
  }

  function row(r) {
    const tr = el("tr");
    for (const col of COLUMNS) {
      if (col.key === null) {
        const td = el("td");
        for (const a of [link(r.viewer, "viewer"), link(r.video, "video")]) if (a) td.append(a);
        tr.append(td);
        continue;
      }
      const value = r[col.key];
      let cls = col.num ? "num" : "";
      if (col.key === "correct" && value !== null) cls = value ? "yes" : "no";
      const td = el("td", cellText(col, value), cls);
      if (col.key === "id") td.title = r.run;
      tr.append(td);
    }
    return tr;
  }

  function rows() {
    const list = D.rows.slice();
    if (sorting.key) list.sort(compare);
    const frag = document.createDocumentFragment();
    for (const r of list) frag.append(r.__tr || (r.__tr = row(r)));  // each row built once, then only moved
    $("rows").replaceChildren(frag);
    for (const th of $("head").children) {
      if (!th.dataset.key) continue;
      th.setAttribute("aria-sort", th.dataset.key === sorting.key ? (sorting.dir > 0 ? "ascending" : "descending")
        : "none");
    }
  }

  function table() {
    D.rows.forEach((r, i) => { r.__i = i; });
    for (const col of COLUMNS) {
      const th = el("th");
      if (col.key === null) th.textContent = col.label;
      else {
        th.dataset.key = col.key;
        const button = el("button", col.label);
        button.type = "button";
        button.addEventListener("click", () => {
          sorting.dir = sorting.key === col.key ? -sorting.dir : 1;
          sorting.key = col.key;
          rows();
        });
        th.append(button);
      }
      $("head").append(th);
    }
    $("table-note").textContent = D.table_note;
    rows();
  }

  header();
  plots();
  table();
  window.attnvizReport = { data: D, sorting };
  document.body.dataset.ready = "1";
})();
