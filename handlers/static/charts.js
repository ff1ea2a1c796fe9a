/* Charts as inline SVG, no library. Every drawn datum carries class "mark" (the browser test counts them). */
(() => {
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#56ccf2", "#6d4c41", "#f2c94c",
                 "#219653", "#bb6bd9"];

function svgEl(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return el;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) < 0.01 ? v.toPrecision(2) : v.toFixed(digits);
}

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

function legend(names) {
  const div = document.createElement("div");
  div.className = "legend";
  names.forEach((n, i) => {
    const s = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = PALETTE[i % PALETTE.length];
    s.append(sw, n);
    div.appendChild(s);
  });
  return div;
}

function axes(svg, x, y, xd, yd, box, xLabel, yLabel, xTicks, ticks = 5) {
  const [l, t, r, b] = box;
  for (let i = 0; i <= ticks; i++) {
    const yv = yd[0] + ((yd[1] - yd[0]) * i) / ticks;
    svg.append(svgEl("line", { x1: l, x2: r, y1: y(yv), y2: y(yv), class: "grid-line" }),
               svgEl("text", { x: l - 4, y: y(yv) + 4, "text-anchor": "end" }, fmt(yv, 2)));
  }
  const xs = xTicks || [...Array(ticks + 1).keys()].map((i) => {
    const xv = xd[0] + ((xd[1] - xd[0]) * i) / ticks;
    return [xv, fmt(xv, 2)];
  });
  for (const [xv, label] of xs) svg.append(svgEl("text", { x: x(xv), y: b + 14, "text-anchor": "middle" }, label));
  svg.append(
    svgEl("line", { x1: l, x2: r, y1: b, y2: b, class: "axis" }),
    svgEl("line", { x1: l, x2: l, y1: t, y2: b, class: "axis" }),
    svgEl("text", { x: (l + r) / 2, y: b + 30, "text-anchor": "middle" }, xLabel || ""),
    svgEl("text", { x: 12, y: (t + b) / 2, transform: `rotate(-90 12 ${(t + b) / 2})`, "text-anchor": "middle" },
          yLabel || ""),
  );
}

/* series: [{name, points: [[x, y], ...]}]; marker: {x, y, label} drawn on top. */
function lineChart({ title, series, xLabel, yLabel, xDomain = [0, 1], yDomain = [0, 1], marker, width = 420,
                     height = 280, markers = [], xTicks = null }) {
  const fig = document.createElement("figure");
  fig.className = "panel";
  const svg = svgEl("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": title || "" });
  const box = [50, 14, width - 14, height - 40];
  const x = scale(xDomain[0], xDomain[1], box[0], box[2]);
  const y = scale(yDomain[0], yDomain[1], box[3], box[1]);
  axes(svg, x, y, xDomain, yDomain, box, xLabel, yLabel, xTicks);
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map(([px, py], j) => `${j ? "L" : "M"}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join("");
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: PALETTE[i % PALETTE.length],
                                    "stroke-width": s.width || 1.6, class: "mark" }, svgEl("title", {}, s.name)));
    if (s.dots) {
      s.points.forEach(([px, py]) => svg.appendChild(
        svgEl("circle", { cx: x(px), cy: y(py), r: 3, fill: PALETTE[i % PALETTE.length], class: "mark" })));
    }
  });
  for (const m of markers) {
    svg.appendChild(svgEl("path", { d: `M${x(m.x)},${box[1]}L${x(m.x)},${box[3]}`, stroke: m.color || "#27ae60",
                                    "stroke-dasharray": "3 3", class: "mark" }, svgEl("title", {}, m.label)));
  }
  if (marker && marker.x !== null && marker.y !== null && marker.x !== undefined && marker.y !== undefined) {
    svg.append(
      svgEl("circle", { cx: x(marker.x), cy: y(marker.y), r: 5, fill: "none", stroke: "#000", "stroke-width": 2,
                        class: "mark operating-point" }, svgEl("title", {}, marker.label || "operating point")),
      svgEl("text", { x: x(marker.x) + 7, y: y(marker.y) - 7 }, marker.label || ""),
    );
  }
  const cap = document.createElement("figcaption");
  cap.textContent = title || "";
  fig.append(cap, svg, legend(series.map((s) => s.name)));
  return fig;
}

/* items: [{label, values: [v, ...]}], one bar per value (names: the series). */
function barChart({ title, items, names, max = 1, width = 420 }) {
  const fig = document.createElement("figure");
  fig.className = "panel";
  const rowH = 12 * Math.max(1, names.length) + 8;
  const height = 24 + rowH * Math.max(1, items.length);
  const svg = svgEl("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": title || "" });
  const left = 110, right = width - 60;
  const x = scale(0, max || 1, left, right);
  items.forEach((it, i) => {
    const top = 10 + i * rowH;
    svg.appendChild(svgEl("text", { x: left - 6, y: top + rowH / 2 + 2, "text-anchor": "end" }, it.label));
    it.values.forEach((v, j) => {
      const yTop = top + j * 12;
      if (v === null || v === undefined) {
        svg.appendChild(svgEl("text", { x: left + 4, y: yTop + 10 }, "n/a"));
        return;
      }
      svg.append(
        svgEl("rect", { x: left, y: yTop, width: Math.max(1, x(v) - left), height: 10,
                        fill: PALETTE[j % PALETTE.length], class: "mark" },
              svgEl("title", {}, `${names[j]} ${it.label}: ${fmt(v)}`)),
        svgEl("text", { x: x(v) + 4, y: yTop + 9 }, fmt(v)),
      );
    });
  });
  const cap = document.createElement("figcaption");
  cap.textContent = title || "";
  fig.append(cap, svg, names.length > 1 ? legend(names) : document.createElement("span"));
  return fig;
}

/* matrix[row][col]: rows predicted, columns true. onCell(row, col): a click on a cell (cells then carry
   class "cell" and data-row / data-col). */
function heatmap({ title, labels, matrix, onCell }) {
  const fig = document.createElement("figure");
  fig.className = "panel";
  const n = labels.length, cell = Math.max(26, Math.min(48, 360 / Math.max(1, n))), left = 100, top = 90;
  const width = left + n * cell + 70, height = top + n * cell + 30;
  const svg = svgEl("svg", { class: "chart heatmap", width, height, viewBox: `0 0 ${width} ${height}`,
                             role: "img", "aria-label": title || "" });
  const max = Math.max(1, ...matrix.flat());
  labels.forEach((lab, i) => {
    svg.append(
      svgEl("text", { x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end" }, lab),
      svgEl("text", { x: left + i * cell + cell / 2, y: top - 6,
                      transform: `rotate(-45 ${left + i * cell + cell / 2} ${top - 6})` }, lab),
    );
  });
  matrix.forEach((row, i) => row.forEach((v, j) => {
    const a = v / max;
    const rect = svgEl("rect", { x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
                                 fill: `rgba(47,128,237,${(0.06 + 0.94 * a).toFixed(3)})`,
                                 class: onCell && v > 0 ? "mark cell" : "mark", "data-row": i, "data-col": j },
                       svgEl("title", {}, `predicted ${labels[i]}, true ${labels[j]}: ${v}${onCell && v > 0 ? " (click: its images)" : ""}`));
    if (onCell && v > 0) rect.addEventListener("click", () => onCell(i, j));
    svg.append(rect, svgEl("text", { x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle",
                                     fill: a > 0.55 ? "#fff" : "#222", "pointer-events": "none" }, String(v)));
  }));
  svg.append(svgEl("text", { x: left + (n * cell) / 2, y: height - 6, "text-anchor": "middle" },
                   "columns: true class · rows: predicted class"));
  const cap = document.createElement("figcaption");
  cap.textContent = title || "";
  fig.append(cap, svg);
  return fig;
}

/* rows: [{label, diff, lo, hi, significant}]: the point estimate and its interval, around zero. */
function forestPlot({ title, rows, width = 520 }) {
  const fig = document.createElement("figure");
  fig.className = "panel";
  const rowH = 22, top = 14, left = 150, right = width - 70;
  const height = top + rowH * Math.max(1, rows.length) + 30;
  const vals = rows.flatMap((r) => [r.lo, r.hi, r.diff]).filter((v) => typeof v === "number");
  const ext = Math.max(1e-6, ...vals.map(Math.abs)) * 1.1;
  const x = scale(-ext, ext, left, right);
  const svg = svgEl("svg", { class: "chart forest", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": title || "" });
  svg.append(svgEl("line", { x1: x(0), x2: x(0), y1: top - 6, y2: height - 26, class: "axis" }),
             svgEl("text", { x: x(0), y: height - 10, "text-anchor": "middle" }, "0 (b − a)"),
             svgEl("text", { x: left, y: height - 10 }, fmt(-ext)),
             svgEl("text", { x: right, y: height - 10, "text-anchor": "end" }, fmt(ext)));
  rows.forEach((r, i) => {
    const cy = top + i * rowH + rowH / 2;
    svg.appendChild(svgEl("text", { x: left - 8, y: cy + 4, "text-anchor": "end" }, r.label));
    const color = r.significant ? (r.diff > 0 ? "#27ae60" : "#eb5757") : "#555";
    if (typeof r.lo === "number" && typeof r.hi === "number") {
      svg.appendChild(svgEl("line", { x1: x(r.lo), x2: x(r.hi), y1: cy, y2: cy, stroke: color, "stroke-width": 2,
                                      class: "mark" }, svgEl("title", {}, `${r.label}: [${fmt(r.lo, 4)}, ${fmt(r.hi, 4)}]`)));
    }
    if (typeof r.diff === "number") {
      svg.append(svgEl("circle", { cx: x(r.diff), cy, r: 4, fill: color, class: "mark" },
                       svgEl("title", {}, `${r.label}: ${fmt(r.diff, 4)}`)),
                 svgEl("text", { x: right + 6, y: cy + 4 }, (r.diff > 0 ? "+" : "") + fmt(r.diff, 4)));
    }
  });
  const cap = document.createElement("figcaption");
  cap.textContent = title || "";
  fig.append(cap, svg);
  return fig;
}

/* ultralytics' skeleton of the 17 COCO keypoints (1-based pairs, utils/plotting.py Annotator); like its
   Annotator, lines are drawn for 17-keypoint poses only, the points for any. */
const COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                       [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]];
const KEYPOINT_MIN = 0.25; // a keypoint below this confidence (or visibility 0) is not drawn, as ultralytics

function keypointMarks(points, color, r, sw) {
  const kpts = [];
  for (let i = 0; i + 2 < points.length; i += 3) kpts.push(points.slice(i, i + 3));
  const seen = (k) => k && k[2] >= KEYPOINT_MIN;
  const out = [];
  if (kpts.length === 17) {
    for (const [a, b] of COCO_SKELETON) {
      const p = kpts[a - 1], q = kpts[b - 1];
      if (seen(p) && seen(q)) {
        out.push(svgEl("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], stroke: color, "stroke-width": sw,
                                 class: "mark limb" }));
      }
    }
  }
  kpts.forEach((k, i) => {
    if (seen(k)) out.push(svgEl("circle", { cx: k[0], cy: k[1], r, fill: color, stroke: "#000", "stroke-width": sw / 2, class: "mark keypoint" },
                                svgEl("title", {}, `keypoint ${i + 1}`)));
  });
  return out;
}

/* An image (object URL, natural size w x h) with shapes drawn on it, in image pixels:
   {box: [x, y, w, h]} a box; {polygons: [[x1, y1, ...], ...]} a mask's outline, filled;
   {poly: [x1, y1, ..., x4, y4]} a rotated box; {keypoints: [x, y, c, ...]}; each with color, label, dash. */
function annotatedImage(url, w, h, shapes, width = 210) {
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, width, height: Math.round((width * h) / w),
                             class: "boxes", role: "img" });
  svg.appendChild(svgEl("image", { href: url, x: 0, y: 0, width: w, height: h, class: "mark" }));
  const sw = Math.max(1, (2 * w) / width); // about 2 screen pixels
  const halo = svgEl("g", { class: "halo", stroke: "#000", "stroke-opacity": 0.55, fill: "none", "stroke-width": 2.2 * sw });
  const marks = svgEl("g", {});
  const draw = (tag, attrs, cls, title) => {
    halo.appendChild(svgEl(tag, { ...attrs, fill: "none" }));
    marks.appendChild(svgEl(tag, { ...attrs, class: `mark ${cls}` }, title));
  };
  // Masks are filled lighter the more there are, so that overlapping ones stay readable.
  const fillOpacity = Math.max(0.06, 0.3 / Math.sqrt(Math.max(1, shapes.filter((s) => (s.polygons || []).length).length)));
  for (const s of shapes) {
    const title = () => svgEl("title", {}, s.label || "");
    const line = { stroke: s.color, "stroke-width": sw, "stroke-dasharray": s.dash ? `${3 * sw} ${2 * sw}` : null };
    if (s.box) {
      const [bx, by, bw, bh] = s.box;
      draw("rect", { x: bx, y: by, width: bw, height: bh, fill: "none", ...line }, "box", title());
    }
    for (const p of s.polygons || []) {
      if (p.length >= 6) draw("polygon", { points: p.join(" "), fill: s.color, "fill-opacity": fillOpacity, ...line }, "mask", title());
    }
    if (s.poly) draw("polygon", { points: s.poly.join(" "), fill: "none", ...line }, "rotated", title());
    if (s.keypoints) marks.append(...keypointMarks(s.keypoints, s.color, 1.6 * sw, sw));
  }
  svg.append(halo, marks);
  return svg;
}

/* An image with boxes [{box: [x, y, w, h], color, label}] drawn on it. */
function imageWithBoxes(url, w, h, boxes) {
  return annotatedImage(url, w, h, boxes);
}

window.Charts = { svgEl, fmt, lineChart, barChart, heatmap, forestPlot, annotatedImage, imageWithBoxes, PALETTE };
})();
