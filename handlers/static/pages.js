/* The dashboard's list pages: leaderboard, models, one model, jobs. Each returns a DOM node (after its data
   loaded); links are hash routes. The evaluation and comparison pages live in evaluation.js and compare.js. */
(() => {
"use strict";

const { fmt } = Charts;
const { link, badge, section, sortableTable } = Widgets;
// Metric columns, in this order, where a setting group's rows have them (each task has its own).
const METRIC_COLUMNS = [["top1", "top-1"], ["top5", "top-5"], ["macro_f1", "macro F1"],
  ["mask_mAP50_95", "mask mAP50-95"], ["pose_mAP50_95", "pose mAP50-95"], ["mAP50", "mAP50"],
  ["mAP50_95", "mAP50-95"], ["precision", "P"], ["recall", "R"], ["f1", "F1"], ["small_object_recall", "R small"],
  ["medium_object_recall", "R medium"], ["large_object_recall", "R large"], ["inference_ms", "ms/img"]];

const modelLink = (name) => link(`#/model/${encodeURIComponent(name)}`, name);

function groupTitle(g, current) {
  return `${g.dataset} · ${g.task} · ${g.split} split · ${g.format} · imgsz ${g.imgsz}${current === false ? " (older content)" : ""}`;
}

async function leaderboard() {
  const { h, api } = Dash;
  const dataset = Dash.q("dataset");
  const rows = await api(`/v1/vision/eval/leaderboard?limit=1000${dataset ? `&dataset=${encodeURIComponent(dataset)}` : ""}`);
  const groups = new Map();
  for (const r of rows) {
    const key = r.group_index ?? r.dataset;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const page = h("div", {}, h("h1", {}, "Leaderboard"),
    h("p", { class: "muted" }, "Models are ranked within a setting group: dataset and its content, task, split, format and image size."));
  if (!rows.length) page.append(h("p", { class: "muted" }, "No evaluations yet."));
  for (const groupRows of groups.values()) {
    const metrics = METRIC_COLUMNS.filter(([k]) => groupRows.some((r) => typeof r[k] === "number"));
    const cols = [["rank", "#"], ["model_name", "model", (r) => modelLink(r.model_name)],
      ["version", "version", (r) => (r.version ? `v${r.version}` : "–")], ["score", "score"], ...metrics,
      ["timestamp", "evaluated", (r) => link(`#/eval/${r.eval_id}`, r.timestamp || `#${r.eval_id}`)]];
    const first = groupRows[0];
    page.append(section(first.group ? groupTitle(first.group, first.current_content) : `Dataset ${first.dataset}`,
                        sortableTable(groupRows, cols, "leaderboard")));
  }
  return page;
}

async function models() {
  const { h, api } = Dash;
  const list = await api("/v1/vision/models");
  const items = Array.isArray(list) ? list : (list.models || []);
  return h("div", {}, h("h1", {}, "Models"), sortableTable(items, [
    ["name", "model", (m) => modelLink(m.name)],
    ["versions", "versions", (m) => (m.version_numbers || []).map((v) => `v${v}`).join(" ") || fmt(m.versions)],
    ["has_current", "current.pt", (m) => (m.has_current ? "yes" : "no")],
    ["latest", "latest evaluation", (m) => (m.latest_evaluation
      ? link(`#/eval/${m.latest_evaluation.eval_id}`, `score ${fmt(m.latest_evaluation.score)}`) : "none")],
  ]));
}

function gatesText(details) {
  const gates = (details && details.gates) || [];
  return gates.map((g) => typeof g === "object"
    ? `${g.gate || ""} ${g.subject || ""}: ${fmt(g.value, 4)} [${fmt(g.ci_low, 4)}, ${fmt(g.ci_high, 4)}] vs ${fmt(g.threshold, 4)}${g.reason ? ` (${g.reason})` : ""}`
    : String(g)).join("; ");
}

function historyChart(history, promotedEvals) {
  const pts = (key) => history.map((r, i) => [i, r[key]]).filter(([, v]) => typeof v === "number");
  const primary = history.some((r) => typeof r.top1 === "number") ? ["top1", "top-1"] : ["mAP50_95", "mAP50-95"];
  const ys = history.flatMap((r) => [r.score, r[primary[0]]]).filter((v) => typeof v === "number");
  return Charts.lineChart({
    title: "Evaluations over time (dashed: promoted)", xLabel: "evaluation (oldest → newest)", yLabel: "value",
    xDomain: [0, Math.max(1, history.length - 1)], yDomain: [Math.min(0, ...ys), Math.max(1, ...ys)],
    series: [{ name: "score", points: pts("score"), dots: true }, { name: primary[1], points: pts(primary[0]), dots: true }],
    markers: history.map((r, i) => promotedEvals.has(r.eval_id) ? { x: i, label: `promoted v${r.version}` } : null).filter(Boolean),
    xTicks: history.length <= 12 ? history.map((r, i) => [i, r.version ? `v${r.version}` : `#${r.eval_id}`]) : null,
    width: 620,
  });
}

/* Why checkpoints of this model were not evaluated, or failed: skipped files, failed or retried states, and
   failed eval jobs of a checkpoint in its folder. */
function problems(detail, failedJobs) {
  const { h } = Dash;
  const inFolder = (m) => m === detail.name || String(m || "").startsWith(`${detail.path}/`);
  const rows = [
    ...failedJobs.filter((j) => inFolder(j.request.model)).map((j) => ({ path: j.request.model, state: "failed",
      reason: j.error || "", when: j.completed_at, attempts: j.attempts })),
    ...(detail.skipped || []).map((s) => ({ path: s.path, state: "skipped", reason: s.reason, when: s.created_at })),
    ...(detail.checkpoints || []).filter((c) => c.last_error || c.state === "failed" || c.state === "retry")
      .map((c) => ({ path: c.path, state: c.state, reason: c.last_error || "", when: c.updated_at, job: c.job_id,
                     attempts: c.attempts })),
    ...(detail.waiting || []).map((w) => ({ path: w.path, state: "waiting", reason: w.reason, when: null })),
  ];
  if (!rows.length) return null;
  return section("Checkpoints not evaluated", h("div", { class: "problems" }, sortableTable(rows, [
    ["path", "checkpoint", (r) => h("span", { class: "path" }, r.path)], ["state", "state", (r) => badge(r.state)], ["reason", "why", (r) => h("span", { class: "reason" }, r.reason)],
    ["attempts", "attempts"], ["when", "when"]])));
}

async function model(name) {
  const { h, api } = Dash;
  const enc = encodeURIComponent(name);
  const listed = await api("/v1/vision/models");
  const inRoot = (listed.models || []).some((m) => m.name === name);
  const [detail, failed] = inRoot ? await Promise.all([api(`/v1/vision/models/${enc}`),
    api("/v1/vision/jobs?status=failed&kind=eval&limit=200")]) : [null, { jobs: [] }];
  // A model evaluated by path has no folder under the models root: its page is its evaluations.
  const history = !detail || (detail.evaluations || []).length
    ? [...await api(`/v1/vision/eval/leaderboard/${enc}?limit=1000`)].sort((a, b) => a.eval_id - b.eval_id) : [];
  const page = h("div", {}, h("h1", {}, `Model ${name}`));
  if (!detail) {
    page.append(h("p", { class: "muted" }, "Evaluated by path: this model has no folder under the models root, so it has no versions, current.pt or promotions here."));
  } else {
    const cur = detail.current;
    page.append(h("p", {}, "current.pt holds: ", cur ? `${cur.version ? `v${cur.version}` : "a checkpoint that is no listed version"} (sha256 ${String(cur.sha256 || "?").slice(0, 12)}…)` : "nothing (no current.pt)"));
    if (!history.length) page.append(h("p", { class: "error" }, "No evaluation of this model has completed."));
    const trouble = problems(detail, failed.jobs);
    if (trouble) page.append(trouble);
  }
  const promotedEvals = new Set(((detail && detail.promotions) || []).filter((p) => p.decision === "promoted").map((p) => p.eval_id));
  if (history.length) page.append(historyChart(history, promotedEvals));
  if (detail) {
    const cur = detail.current;
    page.append(section("Versions", sortableTable(detail.versions || [], [
      ["version", "version", (v) => `v${v.version}`], ["sha256", "sha256", (v) => String(v.sha256 || "–").slice(0, 12)],
      ["size_mb", "MB"], ["current", "current", (v) => (cur && cur.sha256 && v.sha256 === cur.sha256 ? "◀ current" : "")],
      ["error", "problem", (v) => v.error || ""],
    ])));
    page.append(section("Decision ledger", sortableTable(detail.promotions || [], [
      ["timestamp", "when"], ["decision", "decision", (p) => badge(p.decision)], ["actor", "actor"],
      ["version", "version", (p) => (p.version ? `v${p.version}` : "–")], ["previous_score", "previous score"],
      ["new_score", "new score"], ["reason", "reason", (p) => h("span", { class: "reason" }, p.reason)],
      ["gates", "gates", (p) => h("span", { class: "reason" }, gatesText(p.details))],
      ["eval_id", "evaluation", (p) => (p.eval_id ? link(`#/eval/${p.eval_id}`, `#${p.eval_id}`) : "–")],
    ], "ledger")));
  }
  if (history.length) {
    page.append(section("Evaluations", sortableTable([...history].reverse(), [
      ["eval_id", "id", (r) => link(`#/eval/${r.eval_id}`, `#${r.eval_id}`)], ["version", "version"],
      ["task", "task"], ["score", "score"], ["mAP50_95", "mAP50-95"], ["top1", "top-1"], ["dataset", "dataset"],
      ["split", "split"], ["timestamp", "when"],
    ])));
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
      h("td", { class: "path" }, j.request.model || [j.request.model_a, j.request.model_b].filter(Boolean).join(" vs ") || ""),
      h("td", { class: "num" }, `${fmt(j.attempts)}/${fmt(j.max_attempts)}${j.interruptions ? ` (${j.interruptions} interrupted)` : ""}`),
      h("td", { class: "nowrap" }, j.created_at || ""), h("td", {}, jobLink(j)),
      h("td", {}, h("span", { class: "reason muted" }, j.error || "")))));
  };
  await fill();
  Dash.every(1500, () => fill().catch(() => {}));
  return h("div", {}, h("h1", {}, "Jobs"), h("p", { class: "muted" }, "Refreshed every 1.5 s."),
    h("table", {}, h("thead", {}, h("tr", {}, ["job", "kind", "status", "progress", "subject", "attempts", "created", "result", "error"]
      .map((t) => h("th", {}, t)))), tbody));
}

window.Pages = { ...(window.Pages || {}), leaderboard, models, model, jobs };
})();
