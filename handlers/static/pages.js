/* The dashboard's pages. Each returns a DOM node (after its data loaded); links are hash routes. */
(() => {
"use strict";

const METRIC_CARDS = [["score", "score"], ["mAP50", "mAP50"], ["mAP50_95", "mAP50-95"], ["precision", "precision"],
  ["recall", "recall"], ["f1", "F1"], ["conf_threshold", "operating conf"], ["inference_ms", "inference ms"],
  ["images", "images"]];
const LB_COLUMNS = [["rank", "#"], ["model_name", "model"], ["version", "version"], ["score", "score"],
  ["mAP50", "mAP50"], ["mAP50_95", "mAP50-95"], ["precision", "P"], ["recall", "R"], ["f1", "F1"],
  ["inference_ms", "ms/img"], ["small_object_recall", "R small"], ["medium_object_recall", "R medium"],
  ["large_object_recall", "R large"], ["timestamp", "evaluated"]];
const ERROR_KEYS = ["gt", "tp", "fp", "missed", "duplicate", "classification", "localization", "both", "background"];
const FP_TYPES = ["duplicate", "classification", "localization", "both", "background"];
const GALLERY_PER_TYPE = 8;

const { fmt } = Charts;
const link = (href, text) => Dash.h("a", { href }, text);
const num = (v, d) => Dash.h("td", { class: "num" }, fmt(v, d));

function badge(text) {
  return Dash.h("span", { class: `badge ${text}` }, text);
}

function section(title, ...children) {
  return Dash.h("section", {}, Dash.h("h2", {}, title), ...children);
}

/* A table whose headers sort it; columns: [[key, label, render(row) -> node|string]]. */
function sortableTable(rows, columns, cls) {
  const { h } = Dash;
  let key = null, dir = 1;
  const tbody = h("tbody");
  const fill = () => {
    const sorted = key === null ? rows : [...rows].sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    tbody.replaceChildren(...sorted.map((r) => h("tr", {}, columns.map(([k, , render]) => {
      const v = render ? render(r) : r[k];
      return v instanceof Node ? h("td", {}, v) : (typeof r[k] === "number" ? num(r[k]) : h("td", {}, fmt(v)));
    }))));
  };
  const head = h("tr", {}, columns.map(([k, label]) => h("th", {
    class: "sortable", title: "sort",
    onclick: () => { dir = key === k ? -dir : (typeof rows[0]?.[k] === "number" ? -1 : 1); key = k; fill(); },
  }, label)));
  fill();
  return h("table", { class: cls || "" }, h("thead", {}, head), tbody);
}

async function leaderboard() {
  const { h, api } = Dash;
  const dataset = Dash.q("dataset");
  const rows = await api(`/v1/vision/eval/leaderboard?limit=1000${dataset ? `&dataset=${encodeURIComponent(dataset)}` : ""}`);
  const byDataset = new Map();
  for (const r of rows) {
    if (!byDataset.has(r.dataset)) byDataset.set(r.dataset, []);
    byDataset.get(r.dataset).push(r);
  }
  const cols = LB_COLUMNS.map(([k, label]) => [k, label, k === "model_name"
    ? (r) => link(`#/model/${encodeURIComponent(r.model_name)}`, r.model_name)
    : k === "timestamp" ? (r) => link(`#/eval/${r.eval_id}`, r.timestamp) : null]);
  const page = h("div", {}, h("h1", {}, "Leaderboard"));
  if (!rows.length) page.append(h("p", { class: "muted" }, "No evaluations yet."));
  for (const [ds, dsRows] of byDataset) {
    dsRows.forEach((r, i) => { r.rank = i + 1; });
    page.append(section(`Dataset ${ds}`, sortableTable(dsRows, cols, "leaderboard")));
  }
  return page;
}

async function models() {
  const { h, api } = Dash;
  const list = await api("/v1/vision/models");
  const items = Array.isArray(list) ? list : (list.models || []);
  return h("div", {}, h("h1", {}, "Models"), sortableTable(items, [
    ["name", "model", (m) => link(`#/model/${encodeURIComponent(m.name)}`, m.name)],
    ["versions", "versions", (m) => Array.isArray(m.versions) ? m.versions.map((v) => `v${v}`).join(" ") : fmt(m.versions)],
    ["has_current", "current.pt", (m) => (m.has_current ? "yes" : "no")],
  ]));
}

function gatesText(details) {
  const gates = (details && details.gates) || [];
  return gates.map((g) => typeof g === "object"
    ? `${g.gate || ""} ${g.subject || ""}: ${fmt(g.value, 4)} [${fmt(g.ci_low, 4)}, ${fmt(g.ci_high, 4)}] vs ${fmt(g.threshold, 4)}${g.reason ? ` (${g.reason})` : ""}`
    : String(g)).join("; ");
}

async function model(name) {
  const { h, api } = Dash;
  const enc = encodeURIComponent(name);
  const detail = await api(`/v1/vision/models/${enc}`);
  let history = [];
  try { history = await api(`/v1/vision/eval/leaderboard/${enc}?limit=1000`); } catch (e) { if (e.status !== 404) throw e; }
  history = [...history].sort((a, b) => a.eval_id - b.eval_id);
  const promotedEvals = new Set((detail.promotions || []).filter((p) => p.decision === "promoted").map((p) => p.eval_id));
  const pts = (key) => history.map((r, i) => [i, r[key]]).filter(([, v]) => typeof v === "number");
  const ys = history.flatMap((r) => [r.score, r.mAP50_95]).filter((v) => typeof v === "number");
  const chart = Charts.lineChart({
    title: "Evaluations over time (dashed: promoted)", xLabel: "evaluation (oldest → newest)", yLabel: "value",
    xDomain: [0, Math.max(1, history.length - 1)], yDomain: [Math.min(0, ...ys), Math.max(1, ...ys)],
    series: [{ name: "score", points: pts("score"), dots: true }, { name: "mAP50-95", points: pts("mAP50_95"), dots: true }],
    markers: history.map((r, i) => promotedEvals.has(r.eval_id) ? { x: i, label: `promoted v${r.version}` } : null).filter(Boolean),
    xTicks: history.length <= 12 ? history.map((r, i) => [i, r.version ? `v${r.version}` : `#${r.eval_id}`]) : null,
    width: 620,
  });
  const cur = detail.current;
  const page = h("div", {}, h("h1", {}, `Model ${name}`),
    h("p", {}, "current.pt holds: ", cur ? `${cur.version ? `v${cur.version}` : "a checkpoint that is no listed version"} (sha256 ${String(cur.sha256 || "?").slice(0, 12)}…)` : "nothing (no current.pt)"),
    chart);
  page.append(section("Versions", sortableTable(detail.versions || [], [
    ["version", "version", (v) => `v${v.version}`], ["sha256", "sha256", (v) => String(v.sha256 || "–").slice(0, 12)],
    ["size_mb", "MB"], ["current", "current", (v) => (cur && cur.sha256 && v.sha256 === cur.sha256 ? "◀ current" : "")],
  ])));
  page.append(section("Decision ledger", sortableTable(detail.promotions || [], [
    ["timestamp", "when"], ["decision", "decision", (p) => badge(p.decision)], ["actor", "actor"],
    ["version", "version", (p) => (p.version ? `v${p.version}` : "–")], ["previous_score", "previous score"],
    ["new_score", "new score"], ["reason", "reason"], ["gates", "gates", (p) => gatesText(p.details)],
    ["eval_id", "evaluation", (p) => (p.eval_id ? link(`#/eval/${p.eval_id}`, `#${p.eval_id}`) : "–")],
  ])));
  page.append(section("Evaluations", sortableTable([...history].reverse(), [
    ["eval_id", "id", (r) => link(`#/eval/${r.eval_id}`, `#${r.eval_id}`)], ["version", "version"],
    ["score", "score"], ["mAP50", "mAP50"], ["mAP50_95", "mAP50-95"], ["dataset", "dataset"], ["timestamp", "when"],
  ])));
  return page;
}

function errorTable(rows) {
  const { h } = Dash;
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), ERROR_KEYS.map((k) => h("th", { class: "num" }, k)))),
    h("tbody", {}, Object.entries(rows).map(([label, c]) => h("tr", {}, h("td", {}, label), ERROR_KEYS.map((k) => num(c[k]))))));
}

async function exampleCard(evalId, ex) {
  const { h } = Dash;
  const card = h("div", { class: "example" });
  const boxes = [];
  if (ex.type === "missed") {
    boxes.push({ box: ex.box, color: "#27ae60", label: `missed ${ex.class}` });
    if (ex.prediction) boxes.push({ box: ex.prediction.box, color: "#f2994a", label: `prediction ${ex.prediction.class}` });
  } else {
    if (ex.gt) boxes.push({ box: ex.gt.box, color: "#27ae60", label: `ground truth ${ex.gt.class}` });
    boxes.push({ box: ex.box, color: "#eb5757", label: `${ex.type}: ${ex.class} ${fmt(ex.score)}` });
  }
  try {
    const img = await Dash.imageUrl(evalId, ex.image);
    card.append(Charts.imageWithBoxes(img.url, img.width, img.height, boxes));
  } catch (e) {
    card.append(h("p", { class: "error" }, e.message));
  }
  const other = ex.gt ? ` · GT ${ex.gt.class} IoU ${fmt(ex.gt.iou, 2)}` : "";
  card.append(h("div", {}, h("b", {}, ex.class), ex.score !== null ? ` ${fmt(ex.score)}` : "", other),
              h("div", { class: "muted" }, ex.image));
  return card;
}

async function gallery(evalId, examples) {
  const { h } = Dash;
  const out = h("div", {}, h("p", { class: "muted" }, "Red: prediction · green: ground truth · orange: nearest prediction of a miss."));
  for (const type of [...FP_TYPES, "missed"]) {
    const list = (examples[type] || []).slice(0, GALLERY_PER_TYPE);
    if (!list.length) continue;
    const cards = await Promise.all(list.map((ex) => exampleCard(evalId, ex)));
    out.append(h("h3", {}, `${type} (${(examples[type] || []).length} shown of the top 20)`), h("div", { class: "gallery" }, cards));
  }
  return out;
}

async function evaluation(id) {
  const { h, api } = Dash;
  const r = await api(`/v1/vision/evaluations/${id}`);
  const page = h("div", {}, h("h1", {}, `Evaluation #${id}: `, link(`#/model/${encodeURIComponent(r.model_name)}`, r.model_name),
    r.model_version ? ` v${r.model_version}` : ""), h("p", { class: "muted" }, `${r.dataset} · imgsz ${r.imgsz} · ${r.device_kind || r.device} · ${r.timestamp}`));
  page.append(h("div", { class: "cards" }, METRIC_CARDS.map(([k, label]) => h("div", { class: "card" },
    h("div", { class: "label" }, label), h("div", { class: "value" }, fmt(r[k], k === "inference_ms" ? 1 : 3))))));
  const pcm = r.per_class_metrics || {};
  const charts = h("div", { class: "grid" },
    Charts.barChart({ title: "AP per class", names: ["AP50", "AP50-95"],
      items: Object.entries(pcm).map(([n, m]) => ({ label: n, values: [m.ap50, m.ap50_95] })) }),
    Charts.barChart({ title: "Recall by object size", names: ["recall"],
      items: ["small", "medium", "large"].map((b) => ({ label: `${b} (${fmt(r[`${b}_object_count`])})`, values: [r[`${b}_object_recall`]] })) }));
  page.append(section("Metrics", charts));
  try {
    const c = await api(`/v1/vision/evaluations/${id}/curves`);
    const op = c.operating_point || {};
    const series = (key) => [{ name: "all classes", points: c[key].all, width: 2.6 },
      ...Object.entries(c[key].per_class).map(([n, p]) => ({ name: n, points: p }))];
    page.append(section("Curves", h("div", { class: "grid" },
      Charts.lineChart({ title: "Precision–recall (IoU 0.5)", series: series("pr"), xLabel: "recall", yLabel: "precision",
        marker: { x: op.recall, y: op.precision, label: "operating point" } }),
      Charts.lineChart({ title: "F1 vs confidence", series: series("f1"), xLabel: "confidence", yLabel: "F1",
        marker: { x: op.conf_threshold, y: op.f1, label: `conf ${fmt(op.conf_threshold, 3)}` } }),
      Charts.lineChart({ title: "Precision and recall vs confidence (all classes)", xLabel: "confidence", yLabel: "value",
        series: [{ name: "precision", points: c.precision.all }, { name: "recall", points: c.recall.all }],
        markers: [{ x: op.conf_threshold, label: "operating point" }] }))));
  } catch (e) {
    page.append(section("Curves", h("p", { class: "error" }, `Curves unavailable: ${e.message}`)));
  }
  try {
    const err = await api(`/v1/vision/evaluations/${id}/errors?boxes=false`);
    const o = err.overall;
    page.append(section(`Errors at the operating point (conf ≥ ${fmt(err.conf_threshold, 3)})`, h("div", { class: "grid" },
      Charts.barChart({ title: "Error breakdown", names: ["count"], max: Math.max(1, ...FP_TYPES.map((t) => o[t]), o.missed),
        items: [...FP_TYPES, "missed"].map((t) => ({ label: t, values: [o[t]] })) }),
      Charts.heatmap({ title: "Confusion matrix", labels: err.confusion_matrix.labels, matrix: err.confusion_matrix.matrix })),
      h("h3", {}, "Overall and per class"), errorTable({ all: o, ...err.per_class }),
      h("h3", {}, "Per size bucket"), errorTable(err.per_size)));
    page.append(section("Failure examples", await gallery(id, err.examples)));
  } catch (e) {
    page.append(section("Errors", h("p", { class: "error" }, `Error analysis unavailable: ${e.message}`)));
  }
  return page;
}

function intervalRows(map) {
  return Object.entries(map || {}).filter(([, s]) => s && typeof s === "object")
    .map(([label, s]) => ({ label, diff: s.diff, lo: s.ci_low, hi: s.ci_high, significant: s.significant }));
}

async function flipGallery(evalId, names) {
  const { h } = Dash;
  return h("div", { class: "gallery" }, await Promise.all(names.slice(0, 4).map(async (name) => {
    const card = h("div", { class: "example" });
    try {
      const img = await Dash.imageUrl(evalId, name);
      card.append(Charts.imageWithBoxes(img.url, img.width, img.height, []));
    } catch (e) {
      card.append(h("p", { class: "error" }, e.message));
    }
    card.append(h("div", { class: "muted" }, name));
    return card;
  })));
}

async function comparison(jobId) {
  const { h, api } = Dash;
  const job = await api(`/v1/vision/eval/${encodeURIComponent(jobId)}`);
  const page = h("div", {}, h("h1", {}, `Comparison ${jobId}`));
  if (job.status !== "completed") {
    page.append(h("p", {}, badge(job.status), ` ${job.error || ""}`));
    if (job.status === "queued" || job.status === "running") Dash.every(2000, () => window.dispatchEvent(new HashChangeEvent("hashchange")));
    return page;
  }
  const r = job.result;
  page.append(h("p", {}, "A = ", r.eval_id_a ? link(`#/eval/${r.eval_id_a}`, r.model_a) : r.model_a, " · B = ",
    r.eval_id_b ? link(`#/eval/${r.eval_id_b}`, r.model_b) : r.model_b, ` · winner: ${r.winner || "undecided"}`,
    r.winner_significant !== undefined ? ` (significant: ${r.winner_significant ? "yes" : "no"})` : ""));
  page.append(section("Metrics", h("table", {}, h("thead", {}, h("tr", {}, ["metric", "A", "B", "A − B", "better"].map((t) => h("th", {}, t)))),
    h("tbody", {}, Object.entries(r.metrics).map(([m, v]) => h("tr", {}, h("td", {}, m), num(v.a, 4), num(v.b, 4), num(v.diff, 4), h("td", {}, fmt(v.better))))))));
  const stats = r.statistics;
  if (stats && stats.metrics) {
    page.append(section(`Differences A − B with ${Math.round((1 - (stats.alpha || 0.05)) * 100)}% bootstrap intervals (${stats.n_resamples} resamples)`,
      h("div", { class: "grid" }, Charts.forestPlot({ title: "Metrics", rows: intervalRows(stats.metrics) }),
        Charts.forestPlot({ title: "AP50 per class", rows: intervalRows(stats.per_class) }))));
  } else {
    page.append(h("p", { class: "muted" }, "No bootstrap statistics (compare with resamples > 0)."));
  }
  const errs = r.errors;
  if (errs && errs.available) {
    const sideBySide = (groups) => h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), ERROR_KEYS.filter((k) => k !== "gt")
      .map((k) => h("th", { class: "num" }, `${k}: A, B (A − B)`)))), h("tbody", {}, Object.entries(groups).map(([label, rows]) =>
      h("tr", {}, h("td", {}, label), ERROR_KEYS.filter((k) => k !== "gt").map((k) => h("td", { class: "num" },
        `${fmt(rows[k].a)}, ${fmt(rows[k].b)}${rows[k].diff ? ` (${rows[k].diff > 0 ? "+" : ""}${rows[k].diff})` : ""}`))))));
    page.append(section("Errors, side by side (each at its own operating point)",
      h("ul", {}, (errs.changes.length ? errs.changes : ["no change"]).map((c) => h("li", {}, c))),
      sideBySide({ all: errs.rows, ...(errs.per_class || {}) }),
      errs.per_size ? sideBySide(errs.per_size) : null));
  } else if (errs) {
    page.append(section("Errors, side by side", h("p", { class: "muted" }, errs.detail || "unavailable")));
  }
  const flips = stats && stats.flips;
  if (flips && !flips.error) {
    const flipSection = section("Objects found by one model only (flips)");
    for (const [cls, f] of Object.entries(flips)) {
      flipSection.append(h("h3", {}, `${cls}: ${f.a_only} found by A only, ${f.b_only} by B only (of ${f.total})`));
      if ((f.examples_a_only || []).length) flipSection.append(h("div", {}, "A only:"), await flipGallery(r.eval_id_a, f.examples_a_only));
      if ((f.examples_b_only || []).length) flipSection.append(h("div", {}, "B only:"), await flipGallery(r.eval_id_b, f.examples_b_only));
    }
    page.append(flipSection);
  }
  return page;
}

function jobLink(j) {
  const res = j.result || {};
  if (j.status !== "completed") return "–";
  if (j.kind === "eval" && res.eval_id) return link(`#/eval/${res.eval_id}`, `evaluation #${res.eval_id}`);
  if (j.kind === "compare") return link(`#/compare/${encodeURIComponent(j.job_id)}`, "comparison");
  return "–";
}

async function jobs() {
  const { h, api } = Dash;
  const tbody = h("tbody");
  const fill = async () => {
    const reply = await api("/v1/vision/jobs?limit=100");
    tbody.replaceChildren(...reply.jobs.map((j) => h("tr", { "data-status": j.status },
      h("td", {}, j.job_id), h("td", {}, j.kind), h("td", {}, badge(j.status)),
      h("td", {}, h("div", { class: "progress", title: fmt(j.progress, 2) }, (() => {
        const bar = h("div"); bar.style.width = `${Math.round(100 * (j.progress || 0))}%`; return bar; })())),
      h("td", {}, j.request.model || [j.request.model_a, j.request.model_b].filter(Boolean).join(" vs ") || ""),
      h("td", {}, j.created_at || ""), h("td", {}, jobLink(j)), h("td", { class: "muted" }, j.error || ""))));
  };
  await fill();
  Dash.every(1500, () => fill().catch(() => {}));
  return h("div", {}, h("h1", {}, "Jobs"), h("p", { class: "muted" }, "Refreshed every 1.5 s."),
    h("table", {}, h("thead", {}, h("tr", {}, ["job", "kind", "status", "progress", "subject", "created", "result", "error"].map((t) => h("th", {}, t)))), tbody));
}

window.Pages = { leaderboard, models, model, evaluation, comparison, jobs };
})();
