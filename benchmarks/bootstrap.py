"""Paired bootstrap cost: 1,000 resamples on 5,000 images x 100 detections (synthetic evidence).

Measures, on the same synthetic data:

- ``plain``: one plain AP computation (``reference.ap_from_evidence`` on the
  full set: ultralytics' ap_per_class algorithm, every class, all ten IoU
  thresholds, P/R/F1 curves and operating point);
- ``one``: the exact per-resample metrics of ONE evaluation for all resamples
  (``bootstrap_metrics`` with one engine: mAP50, mAP50_95, P, R, F1 at the
  operating point, size recalls, per-class AP50);
- ``paired``: the whole ``paired_bootstrap`` call for two evaluations (both
  engines on the same draws, the full-set values, intervals, flips).

Each is the median of ``--runs`` runs after one warm-up, and is printed with its
ratio to ``plain`` and its median process CPU time (all threads: on a loaded
machine, wall time above CPU time is time spent waiting for a core). The synthetic detector: Poisson(7) objects per image, 85%
found (conf ~ Beta(5, 2)), the rest of the 100 detections false positives
(conf ~ Beta(1, 8)), IoU ~ U(0.5, 1) for the ten TP columns, ``--classes``
classes. Wall times on a shared machine are noisy: compare the ratios.

    .venv/bin/python benchmarks/bootstrap.py [--images 5000] [--dets 100] [--classes 10]
        [--resamples 1000] [--runs 3] [--threads 2]

Target: paired, 1,000 resamples on 5,000 images x 100 detections, < 2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.stats import bootstrap, engine, reference  # noqa: E402 (after the sys.path insert)

TARGET_S = 2.0


def synthetic_evidence(n_img: int, dets: int, nc: int, seed: int, recall: float = 0.85) -> dict[str, np.ndarray]:
    """One model's evidence: every image has exactly ``dets`` detections, sorted by confidence."""
    rng = np.random.default_rng(seed)
    labels_rng = np.random.default_rng(12345)  # the same labels for every model
    g = np.minimum(labels_rng.poisson(7.0, n_img), dets)
    to = np.concatenate([[0], np.cumsum(g)])
    tcls = labels_rng.integers(0, nc, to[-1])
    bucket = labels_rng.integers(0, 3, to[-1]).astype(np.int8)
    n_pred = n_img * dets
    img = np.repeat(np.arange(n_img), dets)
    slot = np.tile(np.arange(dets), n_img)
    is_obj = slot < g[img]
    gidx = to[img] + np.minimum(slot, np.maximum(g[img] - 1, 0))
    hit = is_obj & (rng.random(n_pred) < recall)
    cls = rng.integers(0, nc, n_pred)
    cls[hit] = tcls[gidx[hit]]
    conf = rng.beta(1, 8, n_pred)
    conf[hit] = rng.beta(5, 2, int(hit.sum()))
    iou = rng.uniform(0.5, 1.0, n_pred)
    tp = (iou[:, None] >= np.linspace(0.5, 0.95, 10)[None, :]) & hit[:, None]
    order = np.lexsort((-conf, img))  # per image, by descending confidence (as the validator stores them)
    found = np.zeros(to[-1], dtype=bool)
    found[gidx[hit & (conf >= 0.25)]] = True
    return {
        "image_names": np.array([f"images/{i:06d}.jpg" for i in range(n_img)]),
        "pred_offsets": np.arange(n_img + 1) * dets,
        "tp": tp[order], "conf": conf[order], "pred_cls": cls[order].astype(np.int64),
        "target_offsets": to, "target_cls": tcls.astype(np.int64),
        "gt_offsets": to, "gt_cls": tcls.astype(np.int64), "gt_bucket": bucket, "gt_found": found,
        "conf_threshold": np.array(0.25),
    }


def timed(fn, runs: int) -> tuple[float, float]:
    """Median wall and process CPU seconds of runs calls, after one warm-up."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    ev_a = synthetic_evidence(args.images, args.dets, args.classes, seed=1)
    ev_b = synthetic_evidence(args.images, args.dets, args.classes, seed=2, recall=0.88)
    n_tp = int(ev_a["tp"].sum())
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"threads={args.threads}, load average {os.getloadavg()[0]:.2f}")
    print(f"data: {args.images} images x {args.dets} detections = {len(ev_a['conf'])} predictions, "
          f"{args.classes} classes, {len(ev_a['target_cls'])} objects, {n_tp} TP entries over the 10 IoU "
          f"thresholds; {args.resamples} resamples; median of {args.runs} runs")

    eng = engine.BootstrapEngine(ev_a)
    K = bootstrap.draw_multiplicities(args.images, args.resamples, 0)
    t_plain = timed(lambda: reference.ap_from_evidence(ev_a), args.runs)
    t_prep = timed(lambda: engine.BootstrapEngine(ev_a), args.runs)
    t_draw = timed(lambda: bootstrap.draw_multiplicities(args.images, args.resamples, 0), args.runs)
    t_one = timed(lambda: bootstrap.bootstrap_metrics([eng], K, threads=args.threads), args.runs)
    t_pair = timed(lambda: bootstrap.paired_bootstrap(ev_a, ev_b, n_resamples=args.resamples, seed=0,
                                               threads=args.threads), args.runs)
    rows = [
        ("plain AP computation (one evaluation, full set)", t_plain),
        ("engine preparation (one evaluation)", t_prep),
        (f"draw multiplicities ({args.resamples} x {args.images})", t_draw),
        (f"bootstrap metrics, one evaluation, {args.resamples} resamples", t_one),
        (f"paired_bootstrap, two evaluations, {args.resamples} resamples", t_pair),
    ]
    print(f"  {'(medians; CPU: this process, all threads)':62s} {'wall':>8s}     {'x plain':>7s}   {'CPU':>7s}")
    for name, (t, c) in rows:
        print(f"  {name:62s} {t:8.3f} s   {t / t_plain[0]:7.1f}   {c:7.3f} s")
    print(f"  per resample and evaluation: {t_one[0] / args.resamples * 1e3:.2f} ms "
          f"({t_one[0] / args.resamples / t_plain[0]:.4f} x plain)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    t_pair = t_pair[0]
    print(f"target < {TARGET_S:g} s for the paired call: {'met' if t_pair < TARGET_S else 'NOT met'} "
          f"({t_pair:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
