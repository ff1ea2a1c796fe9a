/* What a task predicts, drawn on its image: boxes, masks (polygons), keypoints with their skeleton, rotated
   boxes. Predictions come in image pixels (the predictions artifact's rows: bbox, segmentation, keypoints,
   obb + poly); labelled objects normalised to the image (box [cx, cy, w, h], points), as the label files. */
(() => {
"use strict";

const { fmt } = Charts;
// Drawn with a dark halo (Charts.annotatedImage), so that they stand out on any image.
const COLORS = { prediction: "#ff3b30", truth: "#34c759", nearest: "#ff9500", a: "#ffcc00", b: "#00c7ff" };

/* A prediction (a row of the artifact, or an example's geometry over its box) as a shape. */
function predictionShape(p, color, label) {
  return { box: p.poly ? null : (p.bbox || p.box), polygons: p.segmentation || [], poly: p.poly, keypoints: p.keypoints,
           color, label };
}

/* A labelled object of a task, scaled to the image's pixels (w x h), as a shape. */
function labelShape(g, task, w, h, color, label) {
  const [cx, cy, bw, bh] = g.box;
  const pts = g.points || [];
  const scaled = (step) => pts.map((v, i) => (i % step === 0 ? v * w : i % step === 1 ? v * h : v));
  const shape = { box: [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h], color, label, dash: true };
  if (task === "segmentation" && pts.length) shape.polygons = [scaled(2)];
  if (task === "obb" && pts.length) { shape.poly = scaled(2); shape.box = null; }
  if (task === "pose" && pts.length) shape.keypoints = scaled(3);
  return shape;
}

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter || 1);
}

/* The labelled object whose box is ``box`` (pixels): the analysis' ground truth of an example. */
function labelOf(labels, box, w, h) {
  let best = null, bestIou = 0.5;
  for (const g of labels || []) {
    const [cx, cy, bw, bh] = g.box;
    const v = iou(box, [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]);
    if (v > bestIou) { best = g; bestIou = v; }
  }
  return best;
}

/* The shapes of one failure example (errors.json's, with the gallery's geometry and ground truth). */
function exampleShapes(ex, task, w, h) {
  const shapes = [];
  const truth = (box, label) => {
    const g = labelOf(ex.ground_truth, box, w, h);
    shapes.push(g && task !== "detection" ? labelShape(g, task, w, h, COLORS.truth, label)
                                          : { box, color: COLORS.truth, label, dash: true });
  };
  if (ex.type === "missed") {
    truth(ex.box, `missed ${ex.class}`);
    if (ex.prediction) {
      shapes.push(predictionShape({ ...ex.prediction, ...(ex.geometry || {}) }, COLORS.nearest,
                                  `nearest prediction ${ex.prediction.class} ${fmt(ex.prediction.score)}`));
    }
  } else {
    if (ex.gt) truth(ex.gt.box, `ground truth ${ex.gt.class}`);
    shapes.push(predictionShape({ box: ex.box, ...(ex.geometry || {}) }, COLORS.prediction,
                                `${ex.type}: ${ex.class} ${fmt(ex.score)}`));
  }
  return shapes;
}

/* The shapes of an image's annotations (``.../annotations``): predictions in ``color``, labels green. */
function annotationShapes(notes, task, w, h, color = COLORS.prediction) {
  return [
    ...(notes.ground_truth || []).map((g) => labelShape(g, task, w, h, COLORS.truth, `ground truth ${g.class}`)),
    ...(notes.predictions || []).map((p) => predictionShape(p, color, `${p.class} ${fmt(p.score)}`)),
  ];
}

/* A card: the image of an evaluation with shapes(w, h) drawn on it, and caption lines under it. */
async function imageCard(evalId, image, shapes, ...caption) {
  const { h } = Dash;
  const card = h("div", { class: "example", "data-image": image });
  try {
    const img = await Dash.imageUrl(evalId, image);
    card.append(Charts.annotatedImage(img.url, img.width, img.height, shapes(img.width, img.height)));
  } catch (e) {
    card.append(h("p", { class: "error" }, e.message));
  }
  card.append(...caption.filter(Boolean).map((c) => (c instanceof Node ? c : h("div", {}, c))),
              h("div", { class: "muted name" }, image));
  return card;
}

function legend(entries) {
  const { h } = Dash;
  return h("p", { class: "legend" }, entries.map(([key, text]) => h("span", {},
    h("i", { style: `background:${COLORS[key]}` }), text)));
}

window.Overlays = { COLORS, predictionShape, labelShape, labelOf, exampleShapes, annotationShapes, imageCard, legend };
})();
