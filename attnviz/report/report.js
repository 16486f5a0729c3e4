// attnviz study report. Everything from the data (sample ids, model names, paths) enters the DOM through
// textContent; links are the page's own relative "./..." paths, images its own base64 PNGs.
(() => {
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const $ = (id) => document.getElementById(id);
  const COLUMNS = [
    { key: "id", label: "sample", title: "run" },
    { key: "model", label: "model" },
    { key: "correct", label: "correct", yesno: true },
    { key: "layer", label: "layer", num: true },
    { key: "n_tokens", label: "answer tokens", num: true },
    { key: "image_share", label: "image share", num: true, digits: 3 },
    { key: "gt_share", label: "ground-truth share", num: true, digits: 3 },
    { key: "hit", label: "hit", num: true, digits: 3 },
    { key: null, label: "files", links: [["viewer", "viewer"], ["video", "video"]] },
  ];
  const CHANGED = [
    { key: "id", label: "sample", title: "dir" },
    { key: "model", label: "model" },
    { key: "layer", label: "layer", num: true },
    { key: "model_layer", label: "model's layer", num: true },
    { key: "js", label: "JS divergence", num: true, digits: 3 },
    { key: "image_share", label: "Δ image share", num: true, digits: 3, signed: true },
    { key: "gt_share", label: "Δ ground-truth share", num: true, digits: 3, signed: true },
    { key: "hit", label: "Δ hit", num: true, digits: 3, signed: true },
    { key: "reference_correct", label: "reference correct", yesno: true },
    { key: "model_correct", label: "model correct", yesno: true },
    { key: null, label: "files", links: [["viewer", "comparison"], ["video", "video"]] },
  ];
  const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

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
    if (col.yesno) return value ? "yes" : "no";
    if (col.digits && typeof value === "number") {
      return (col.signed && value > 0 ? "+" : "") + value.toFixed(col.digits);
    }
    return String(value);
  }

  function warnings(box, count, list, info, what) {
    if (!info || !info.count) return;
    box.hidden = false;
    count.textContent = `${info.count} ${what} skipped (unreadable or another format)` +
      (info.count > info.shown.length ? `; the first ${info.shown.length}:` : ":");
    for (const s of info.shown) list.append(el("li", `${s.path}: ${s.why}`));
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
    warnings($("skipped"), $("skipped-count"), $("skipped-list"), D.skipped, "metrics.json");
    const csv = $("csv-link");
    csv.href = D.csv;
  }

  function figures(list, parent) {
    for (const p of list) {
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
      parent.append(fig);
    }
  }

  // A table whose rows sort by a column when its header is clicked (again: the other way); blanks always last.
  function sortable(head, body, columns, list) {
    const sorting = { key: null, dir: 1 };
    list.forEach((r, i) => { r.__i = i; });

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
      for (const col of columns) {
        if (col.key === null) {
          const td = el("td");
          for (const [key, text] of col.links) {
            const a = link(r[key], text);
            if (a) td.append(a);
          }
          tr.append(td);
          continue;
        }
        const value = r[col.key];
        let cls = col.num ? "num" : "";
        if (col.yesno && value !== null && value !== undefined) cls = value ? "yes" : "no";
        const td = el("td", cellText(col, value), cls);
        if (col.title && typeof r[col.title] === "string") td.title = r[col.title];
        tr.append(td);
      }
      return tr;
    }

    function rows() {
      const shown = list.slice();
      if (sorting.key) shown.sort(compare);
      const frag = document.createDocumentFragment();
      for (const r of shown) frag.append(r.__tr || (r.__tr = row(r)));  // each row built once, then only moved
      body.replaceChildren(frag);
      for (const th of head.children) {
        if (!th.dataset.key) continue;
        th.setAttribute("aria-sort", th.dataset.key === sorting.key ? (sorting.dir > 0 ? "ascending" :
          "descending") : "none");
      }
    }

    for (const col of columns) {
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
      head.append(th);
    }
    rows();
    return sorting;
  }

  function comparisonSection(c, i) {
    const box = el("div", null, "comparison");
    box.id = `comparison-${i}`;
    const others = c.models.slice(1).join(", ");
    box.append(el("h3", `${others} against ${c.reference}`));
    const match = Object.entries(c.layer_match).map(([m, how]) => `${m}: by ${how}`).join("; ");
    const folders = c.folders.filter((f) => f !== ".");
    const summary = el("p", `${c.samples} ${c.samples === 1 ? "sample" : "samples"} compared (answers: ` +
      `${c.answer || "unknown"}; layers matched ${match})` + (folders.length ? ` from ${folders.join(", ")}` : "") +
      (c.duplicates ? `; ${c.duplicates} compared again elsewhere, counted once` : "") +
      Object.entries(c.mismatched).map(([m, k]) => `; ${k} of ${m}'s left out (layers matched otherwise)`).join("") +
      ". All numbers: ", "note");
    const csv = link(c.csv, c.csv.slice(2));
    if (csv) summary.append(csv, ".");
    box.append(summary);
    const figs = el("div");
    figures(c.plots, figs);
    box.append(figs, el("h4", "Samples that changed most"), el("p", c.table.note, "note"));
    const t = el("table", null, "changed");
    const head = el("tr"), body = el("tbody");
    const thead = el("thead");
    thead.append(head);
    t.append(thead, body);
    box.append(t);
    $("compare-sections").append(box);
    return sortable(head, body, CHANGED, c.table.rows);
  }

  function comparison() {
    const C = D.comparison;
    if (!C) return [];
    $("comparison").hidden = false;
    warnings($("compare-skipped"), $("compare-skipped-count"), $("compare-skipped-list"), C.skipped,
      "compare.json");
    return C.sections.map(comparisonSection);
  }

  header();
  figures(D.plots, $("plots"));
  const compared = comparison();
  $("table-note").textContent = D.table_note;
  const sorting = sortable($("head"), $("rows"), COLUMNS, D.rows);
  window.attnvizReport = { data: D, sorting, compared };
  document.body.dataset.ready = "1";
})();
