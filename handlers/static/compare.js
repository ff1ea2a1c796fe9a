/* A comparison's page: metrics, differences with their bootstrap intervals (overall and per class), the
   error breakdowns side by side (detection and its kin), McNemar's test (classification) and the flips:
   images one model gets right and the other wrong, each drawn as A and B predicted it, side by side. */
(() => {
"use strict";

const { fmt } = Charts;
const { link, num, badge, section, sortableTable, query } = Widgets;
const { COLORS, annotationShapes, imageCard, legend } = Overlays;
const FLIP_IMAGES = 3; // example images per class and side (the comparison keeps this many)

function intervalRows(map) {
  return Object.entries(map || {}).filter(([, s]) => s && typeof s === "object")
    .map(([label, s]) => ({ label, diff: s.diff, lo: s.ci_low, hi: s.ci_high, significant: s.significant }));
}

function metricsTable(r) {
  const { h } = Dash;
  return h("table", {}, h("thead", {}, h("tr", {}, ["metric", "A", "B", "A − B", "better"].map((t) => h("th", {}, t)))),
    h("tbody", {}, Object.entries(r.metrics).map(([m, v]) => h("tr", {}, h("td", {}, m), num(v.a, 4), num(v.b, 4),
      num(v.diff, 4), h("td", {}, fmt(v.better))))));
}

/* Each group's counts (rows: {key: {a, b, diff}}): "A, B (A − B)" per key. */
function sideBySide(groups) {
  const { h } = Dash;
  const keys = Object.keys(Object.values(groups)[0] || {});
  const cell = (v) => `${fmt(v.a)}, ${fmt(v.b)}${v.diff ? ` (${v.diff > 0 ? "+" : ""}${fmt(v.diff)})` : ""}`;
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "A, B (A − B)"),
    keys.map((k) => h("th", { class: "num" }, k)))), h("tbody", {}, Object.entries(groups).map(([label, rows]) =>
    h("tr", {}, h("td", {}, label), keys.map((k) => h("td", { class: "num" }, rows[k] ? cell(rows[k]) : "–")))))));
}

/* Per class: A, B, A − B and its interval, as numbers (the forest plot draws them). */
function perClassTable(stats) {
  const { h } = Dash;
  const rows = Object.entries(stats.per_class || {}).map(([name, s]) => ({ class: name, ...s }));
  return sortableTable(rows, [["class", "class"], ["support", "support"], ["a", "A"], ["b", "B"], ["diff", "A − B"],
    ["ci_low", "interval", (s) => h("span", { class: "nowrap" }, `[${fmt(s.ci_low, 4)}, ${fmt(s.ci_high, 4)}]`)],
    ["p_value", "p"], ["significant", "significant", (s) => (s.significant ? "yes" : "no")]], "per-class-diff");
}

function errorsSection(errs) {
  const { h } = Dash;
  if (!errs) return null;
  if (!errs.available) return section("Errors, side by side", h("p", { class: "muted" }, errs.detail || "unavailable"));
  return section("Errors, side by side (each at its own operating point)",
    h("ul", {}, (errs.changes.length ? errs.changes : ["no change"]).map((c) => h("li", {}, c))),
    sideBySide({ all: errs.rows }), errs.per_class ? sideBySide(errs.per_class) : null,
    errs.per_size ? sideBySide(errs.per_size) : null);
}

function mcnemarLine(m) {
  const { h } = Dash;
  return h("p", { class: "mcnemar" }, `McNemar's exact test on top-1: ${m.b} images right by A only, ${m.c} by B only; `,
    `p = ${fmt(m.p_value, 4)} (${m.significant ? "significant" : "not significant"}).`);
}

const FLIP_DRAWN = 10; // predictions drawn per side: the most confident of the class

/* One flip image as A and as B predicted it: detection and its kin draw each model's most confident
   predictions of the class beside its labelled objects, A's image beside B's; classification says what each
   predicted under the image. */
async function flipPair(r, cls, image) {
  const { h, api } = Dash;
  const note = (id) => api(`/v1/vision/evaluations/${id}/annotations?${query({ image, cls })}`);
  const [na, nb] = await Promise.all([note(r.eval_id_a), note(r.eval_id_b)]);
  if (na.task === "classification") {
    const said = (key, notes) => {
      const right = notes.top5[0] === notes.true;
      return h("div", {}, h("b", {}, `${key}: `), `${notes.top5[0]} (${fmt(notes.conf[0])}) `,
        h("span", { class: right ? "right" : "wrong" }, right ? "right" : "wrong"));
    };
    return h("div", { class: "pair", "data-image": image, "data-class": cls },
      await imageCard(r.eval_id_a, image, () => [], `true ${na.true}`, said("A", na), said("B", nb)));
  }
  const side = async (id, notes, key) => {
    const drawn = [...notes.predictions].sort((x, y) => y.score - x.score).slice(0, FLIP_DRAWN);
    const more = notes.predictions.length - drawn.length;
    const card = await imageCard(id, image, (w, hh) => annotationShapes({ ...notes, predictions: drawn }, notes.task, w, hh, COLORS[key.toLowerCase()]),
      h("div", {}, h("b", {}, `${key}: `), `${notes.predictions.length} ${cls} predicted${more > 0 ? ` (the ${drawn.length} most confident drawn)` : ""}`,
        ` · ${notes.ground_truth.length} labelled`));
    card.dataset.labelled = notes.ground_truth.length;
    return card;
  };
  return h("div", { class: "pair", "data-image": image, "data-class": cls },
    await side(r.eval_id_a, na, "A"), await side(r.eval_id_b, nb, "B"));
}

async function flipsSection(r, flips, classification) {
  const { h } = Dash;
  const out = section(classification ? "Flips: images one model classifies right and the other wrong"
                                     : "Flips: objects found by one model only",
    classification ? null : legend([["a", "A's predictions"], ["b", "B's predictions"], ["truth", "ground truth"]]));
  for (const [cls, f] of Object.entries(flips)) {
    if (!f.a_only && !f.b_only) continue;
    const what = classification ? "images" : "objects";
    out.append(h("h3", {}, `${cls}: ${f.a_only} ${what} right by A only, ${f.b_only} by B only (of ${f.total})`));
    for (const [side, list] of [["A only", f.examples_a_only], ["B only", f.examples_b_only]]) {
      if (!(list || []).length) continue;
      const pairs = await Promise.all(list.slice(0, FLIP_IMAGES).map((image) => flipPair(r, cls, image)
        .catch((e) => h("p", { class: "error" }, e.message))));
      out.append(h("div", { class: "flip", "data-side": side }, h("div", { class: "muted" }, `${side}:`), h("div", { class: "pairs" }, pairs)));
    }
  }
  return out;
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
  const stats = r.statistics;
  const classification = (stats && stats.task === "classification") || "top1" in r.metrics;
  page.append(h("p", {}, "A = ", r.eval_id_a ? link(`#/eval/${r.eval_id_a}`, r.model_a) : r.model_a, " · B = ",
    r.eval_id_b ? link(`#/eval/${r.eval_id_b}`, r.model_b) : r.model_b, ` · winner: ${r.winner || "undecided"}`,
    r.winner_significant !== undefined ? ` (significant: ${r.winner_significant ? "yes" : "no"})` : ""));
  page.append(section("Metrics", metricsTable(r)));
  if (stats && stats.metrics) {
    page.append(section(`Differences A − B with ${Math.round((1 - (stats.alpha || 0.05)) * 100)}% bootstrap intervals (${stats.n_resamples} resamples)`,
      h("div", { class: "grid" }, Charts.forestPlot({ title: "Metrics", rows: intervalRows(stats.metrics) }),
        Charts.forestPlot({ title: `${stats.per_class_metric || "AP50"} per class`, rows: intervalRows(stats.per_class) })),
      stats.mcnemar ? mcnemarLine(stats.mcnemar) : null,
      h("h3", {}, `${stats.per_class_metric || "AP50"} per class`), perClassTable(stats)));
  } else {
    page.append(h("p", { class: "muted" }, "No bootstrap statistics (compare with resamples > 0)."));
  }
  const errs = errorsSection(r.errors);
  if (errs) page.append(errs);
  const flips = stats && stats.flips;
  if (flips && !flips.error && r.eval_id_a && r.eval_id_b) page.append(await flipsSection(r, flips, classification));
  return page;
}

window.Pages = { ...(window.Pages || {}), comparison };
})();
