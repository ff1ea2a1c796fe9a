/* One evaluation's page: cards, per-class table, curves (per metric family), confusion matrix whose cells
   open their images, error tables and the failure gallery. Detection and its kin (segmentation, pose, obb)
   and classification. Lists that grow with the number of images come a page at a time from the daemon
   (.../gallery, .../cells); the errors are fetched without their per-image lists. */
(() => {
"use strict";

const { fmt } = Charts;
const { link, num, section, sortableTable, moreButton, query } = Widgets;
const { exampleShapes, annotationShapes, imageCard, legend } = Overlays;
// Cards, in this order, for the metrics a result has (each task has its own).
const CARDS = [["score", "score"], ["top1", "top-1"], ["top5", "top-5"], ["macro_f1", "macro F1"],
  ["mask_mAP50_95", "mask mAP50-95"], ["mask_mAP50", "mask mAP50"], ["pose_mAP50_95", "pose mAP50-95"],
  ["pose_mAP50", "pose mAP50"], ["mAP50_95", "mAP50-95"], ["mAP50", "mAP50"], ["precision", "precision"],
  ["recall", "recall"], ["f1", "F1"], ["mask_precision", "mask P"], ["mask_recall", "mask R"],
  ["pose_precision", "pose P"], ["pose_recall", "pose R"], ["conf_threshold", "operating conf"],
  ["inference_ms", "inference ms"], ["images", "images"]];
// Per-class metrics of detection and its kin, in this order, where the result has them (one set per family).
const PER_CLASS = ["", "mask_", "pose_"].flatMap((f) => [[`${f}ap50`, `${f.replace("_", " ")}AP50`],
  [`${f}ap50_95`, `${f.replace("_", " ")}AP50-95`], [`${f}precision`, `${f.replace("_", " ")}P`], [`${f}recall`, `${f.replace("_", " ")}R`]]);
const ERROR_KEYS = ["gt", "tp", "fp", "missed", "duplicate", "classification", "localization", "both", "background"];
const FP_TYPES = ["duplicate", "classification", "localization", "both", "background"];
const GALLERY_PAGE = 8;
const OVERLAP = { segmentation: "mask IoU", pose: "OKS", obb: "rotated IoU" }; // what examples' "iou" measures
const CELL_PAGE = 12;
const HEATMAP_MAX = 30; // above this many classes the matrix is listed as its most confused pairs

const isClassification = (r) => r.task === "classification";
const base = (id) => `/v1/vision/evaluations/${id}`;

function cards(r) {
  const { h } = Dash;
  return h("div", { class: "cards" }, CARDS.filter(([k]) => typeof r[k] === "number").map(([k, label]) =>
    h("div", { class: "card", "data-metric": k }, h("div", { class: "label" }, label),
      h("div", { class: "value" }, fmt(r[k], k === "inference_ms" ? 1 : 3)))));
}

/* Per class: the result's metrics, with the error counts of detection's analysis beside them. */
function perClassTable(r, errors) {
  const pcm = r.per_class_metrics || {};
  const rows = Object.entries(pcm).map(([name, m]) => ({ class: name, ...m, ...((errors && errors.per_class[name]) || {}) }));
  const cols = isClassification(r)
    ? [["class", "class"], ["precision", "precision"], ["recall", "recall"], ["f1", "F1"], ["support", "images"]]
    : [["class", "class"], ...PER_CLASS.filter(([k]) => rows.some((row) => typeof row[k] === "number")),
       ["support", "objects"], ...(errors ? ERROR_KEYS.slice(1).map((k) => [k, k]) : [])];
  return sortableTable(rows, cols, "per-class");
}

function errorTable(rows) {
  const { h } = Dash;
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), ERROR_KEYS.map((k) => h("th", { class: "num" }, k)))),
    h("tbody", {}, Object.entries(rows).map(([label, c]) => h("tr", {}, h("td", {}, label), ERROR_KEYS.map((k) => num(c[k]))))));
}

function curveCharts(c, family) {
  const op = c.operating_point || {};
  const series = (key) => [{ name: "all classes", points: c[key].all, width: 2.6 },
    ...Object.entries(c[key].per_class).map(([n, p]) => ({ name: n, points: p }))];
  const tag = family === "box" ? "" : `${family} `;
  return [
    Charts.lineChart({ title: `${tag}Precision–recall (IoU 0.5)`.replace(/^./, (s) => s.toUpperCase()), series: series("pr"),
      xLabel: "recall", yLabel: "precision", marker: { x: op.recall, y: op.precision, label: "operating point" } }),
    Charts.lineChart({ title: `${tag}F1 vs confidence`.replace(/^./, (s) => s.toUpperCase()), series: series("f1"),
      xLabel: "confidence", yLabel: "F1", marker: { x: op.conf_threshold, y: op.f1, label: `conf ${fmt(op.conf_threshold, 3)}` } }),
  ];
}

async function curvesSection(id) {
  const { h, api } = Dash;
  try {
    const c = await api(`${base(id)}/curves`);
    const families = c.families || ["box"];
    const out = section("Curves");
    for (const fam of families) {
      const fc = fam === "box" ? c : c[fam];
      if (!fc) continue;
      const charts = curveCharts(fc, fam);
      if (fam === "box") {
        const op = c.operating_point || {};
        charts.push(Charts.lineChart({ title: "Precision and recall vs confidence (all classes)", xLabel: "confidence", yLabel: "value",
          series: [{ name: "precision", points: c.precision.all }, { name: "recall", points: c.recall.all }],
          markers: [{ x: op.conf_threshold, label: "operating point" }] }));
      }
      out.append(families.length > 1 ? h("h3", {}, `${fam} family`) : "", h("div", { class: "grid", "data-family": fam }, charts));
    }
    return out;
  } catch (e) {
    return section("Curves", h("p", { class: "error" }, `Curves unavailable: ${e.message}`));
  }
}

/* The images behind one confusion-matrix cell, a page at a time, in ``panel``. */
async function openCell(id, r, panel, labels, row, col) {
  const { h, api } = Dash;
  const grid = h("div", { class: "gallery" });
  const status = h("p", { class: "muted" });
  let offset = 0, count = 0;
  const next = async () => {
    const page = await api(`${base(id)}/cells?${query({ predicted: row, true: col, offset, limit: CELL_PAGE })}`);
    count = page.count;
    grid.append(...await Promise.all(page.items.map((it) => cellCard(id, r, it, page))));
    offset += page.items.length;
    status.textContent = `${offset} of ${count} image${count === 1 ? "" : "s"} shown.`;
    return offset < count;
  };
  panel.replaceChildren(h("h3", {}, `Predicted ${labels[row]}, true ${labels[col]}`), status, grid);
  panel.dataset.cell = `${row},${col}`;
  if (await next()) panel.append(moreButton("Show more images", next));
  panel.scrollIntoView({ block: "nearest" });
}

function cellCard(id, r, item, page) {
  const notes = item.annotations || {};
  if (isClassification(r)) {
    return imageCard(id, item.image, () => [],
      `true ${notes.true} · top-1 ${(notes.top5 || [])[0]} (${fmt((notes.conf || [])[0])})`,
      Dash.h("div", { class: "muted" }, `top-5: ${(notes.top5 || []).map((c, i) => `${c} ${fmt(notes.conf[i], 2)}`).join(", ")}`));
  }
  return imageCard(id, item.image, (w, h) => annotationShapes(notes, r.task, w, h),
    `${(notes.predictions || []).length} predicted ${page.predicted} · ${(notes.ground_truth || []).length} labelled ${page.true}`);
}

/* The matrix (a heatmap, or its most confused pairs when there are many classes); a click on a cell opens
   its images under it. */
function confusion(id, r, cm) {
  const { h } = Dash;
  const panel = h("div", { class: "cell-panel" });
  const open = (i, j) => openCell(id, r, panel, cm.labels, i, j).catch((e) => panel.replaceChildren(h("p", { class: "error" }, e.message)));
  let view;
  if (cm.labels.length <= HEATMAP_MAX) {
    view = Charts.heatmap({ title: "Confusion matrix (click a cell for its images)", labels: cm.labels, matrix: cm.matrix, onCell: open });
  } else {
    const pairs = [];
    cm.matrix.forEach((row, i) => row.forEach((v, j) => { if (v > 0 && i !== j) pairs.push({ predicted: cm.labels[i], true: cm.labels[j], count: v, i, j }); }));
    pairs.sort((a, b) => b.count - a.count);
    view = h("div", {}, h("h3", {}, `Most confused pairs (of ${cm.labels.length} classes)`), sortableTable(pairs, [
      ["predicted", "predicted"], ["true", "true"],
      ["count", "images", (p) => h("a", { href: "javascript:void 0", class: "cell", onclick: () => open(p.i, p.j) }, String(p.count))]]));
  }
  return { view, panel };
}

function gallerySection(id, r) {
  const { h } = Dash;
  const kinds = isClassification(r) ? ["mistakes"] : [...FP_TYPES, "missed"];
  const select = h("select", { class: "class-filter" }, h("option", { value: "" }, "all classes"),
    (r.class_names || []).map((c) => h("option", { value: c }, c)));
  const blocks = h("div", {});
  const render = async () => {
    try {
      blocks.replaceChildren(...await Promise.all(kinds.map((k) => kindBlock(id, r, k, select.value || null))));
    } catch (e) {
      blocks.replaceChildren(h("p", { class: "error" }, `Failure examples unavailable: ${e.message}`));
    }
    blocks.dataset.cls = select.value;
  };
  select.addEventListener("change", () => {
    blocks.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    render();
  });
  const note = isClassification(r) ? null : legend([["prediction", "prediction"], ["truth", "ground truth"], ["nearest", "nearest prediction of a miss"]]);
  return { node: section(isClassification(r) ? "Most confident mistakes" : "Failure examples",
                         h("label", {}, "Class: ", select), note, blocks), render };
}

const KEPT = { missed: "largest", mistakes: "most confident" };

async function kindBlock(id, r, kind, cls) {
  const { h, api } = Dash;
  const grid = h("div", { class: "gallery" });
  const heading = h("h3", {});
  const block = h("div", { class: "kind", "data-kind": kind }, heading, grid);
  let offset = 0, page = null;
  const next = async () => {
    page = await api(`${base(id)}/gallery?${query({ kind, cls, offset, limit: GALLERY_PAGE })}`);
    grid.append(...await Promise.all(page.items.map((ex) => exampleCard(id, r, ex))));
    offset += page.items.length;
    block.dataset.count = page.count;
    block.dataset.shown = offset;
    heading.textContent = `${kind}${cls ? ` (${cls})` : ""}: ${page.count} in all · ${offset} shown` +
      (page.count > page.stored ? ` (the analysis keeps the ${page.stored} ${KEPT[kind] || "most confident"} as examples)` : "");
    return offset < page.stored;
  };
  if (await next()) block.append(moreButton("Show more", next));
  if (!page.count) block.classList.add("empty");
  return block;
}

function exampleCard(id, r, ex) {
  const { h } = Dash;
  if (isClassification(r)) {
    return imageCard(id, ex.image, () => [], h("div", {}, "true ", h("b", {}, ex.true), ` · predicted ${ex.predicted} (${fmt(ex.confidence)})`));
  }
  const other = ex.gt ? ` · GT ${ex.gt.class} ${OVERLAP[r.task] || "IoU"} ${fmt(ex.gt.iou, 2)}` : "";
  return imageCard(id, ex.image, (w, hh) => exampleShapes(ex, r.task, w, hh),
    h("div", {}, h("b", {}, ex.class), ex.score !== null ? ` ${fmt(ex.score)}` : "", other));
}

async function evaluation(id) {
  const { h, api } = Dash;
  const r = await api(base(id));
  const page = h("div", { "data-task": r.task || "detection" },
    h("h1", {}, `Evaluation #${id}: `, link(`#/model/${encodeURIComponent(r.model_name)}`, r.model_name), r.model_version ? ` v${r.model_version}` : ""),
    h("p", { class: "muted path" }, `${r.task || "detection"} · ${r.dataset} · ${r.split || "val"} split · imgsz ${r.imgsz} · ${r.device_kind || r.device} · ${r.timestamp}`),
    cards(r));
  const cls = isClassification(r);
  // Everything the page shows at once is asked for at once; each answer is bounded, whatever the image count.
  const gallery = gallerySection(id, r);
  const [curves, errors] = await Promise.all([cls ? null : curvesSection(id),
    api(`${base(id)}/errors?boxes=false&images=false`).catch((e) => e), gallery.render()]);
  const ok = !(errors instanceof Error);
  const metrics = section("Per class", perClassTable(r, ok && !cls ? errors : null));
  if (!cls) {
    const first = Object.values(r.per_class_metrics || {})[0] || {};
    const families = ["", "mask_", "pose_"].filter((f) => `${f}ap50` in first);
    metrics.prepend(h("div", { class: "grid" },
      Charts.barChart({ title: "AP50 per class", names: families.map((f) => `${f || "box "}AP50`.replace("_", " ")),
        items: Object.entries(r.per_class_metrics || {}).map(([n, m]) => ({ label: n, values: families.map((f) => m[`${f}ap50`]) })) }),
      Charts.barChart({ title: "Recall by object size", names: ["recall"],
        items: ["small", "medium", "large"].map((b) => ({ label: `${b} (${fmt(r[`${b}_object_count`])})`, values: [r[`${b}_object_recall`]] })) })));
  }
  page.append(metrics);
  if (curves) page.append(curves);
  if (!ok) {
    page.append(section("Errors", h("p", { class: "error" }, `Error analysis unavailable: ${errors.message}`)));
    return page;
  }
  const { view, panel } = confusion(id, r, errors.confusion_matrix);
  if (cls) {
    const o = errors.overall;
    page.append(section(`Errors at top-1: ${o.wrong} of ${o.images} images wrong`, view, panel));
  } else {
    const o = errors.overall;
    page.append(section(`Errors at the operating point (conf ≥ ${fmt(errors.conf_threshold, 3)}${errors.overlap ? `, matched by ${errors.overlap}` : ""})`,
      h("div", { class: "grid" },
        Charts.barChart({ title: "Error breakdown", names: ["count"], max: Math.max(1, ...FP_TYPES.map((t) => o[t]), o.missed),
          items: [...FP_TYPES, "missed"].map((t) => ({ label: t, values: [o[t]] })) }), view),
      panel, h("h3", {}, "Overall and per size bucket"), errorTable({ all: o, ...errors.per_size })));
  }
  page.append(gallery.node);
  return page;
}

window.Pages = { ...(window.Pages || {}), evaluation };
})();
