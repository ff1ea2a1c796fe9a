"""The vectorised engine: exact per-resample metrics of one evidence for a block of resamples at once.

See ``BootstrapEngine`` for the method. Arrays, by name (R resamples in a
block, images as rows):

- ``draws`` (R, n_img): how many times each image is drawn in each resample;
  ``draws_t``: the same transposed (images x resamples) plus a never-drawn
  image row, in the narrowest unsigned dtype (``layout.narrowest_uint``).
- ``sums`` (rows x R): exact integer prefix sums of drawn copies at the rows
  of a ``layout.ClassLayout``: T at each run slot, T (threshold 0) before
  each cut, W at each checkpoint, then a 0 row.
- ``w_floor``: max(W, 1) at the checkpoints up to the last TP (the
  precision denominators), then an inf row (padding slots read T / inf = 0).
- in ``_ap``: ``t_runs`` = T at the run slots; ``prec`` = precision T / W at
  each run's last TP, then its suffix maximum (the precision envelope E);
  ``levels`` = c(T) = min(100, ceil(100 T / n)), the grid points below the
  recall T / n; ``new_levels`` = c(T_j) - c(T_j-1), the grid points first
  reached at run j (see the derivation in ``BootstrapEngine``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evaluation.stats import (
    layout as kmajor,  # its BLOCK, read at call time (tests vary it)
)
from evaluation.stats import operating_point
from evaluation.stats.layout import (
    ClassLayout,
    PrefixPlan,
    Scratch,
    narrowest_uint,
    scan_rows,
)
from evaluation.stats.reference import (
    AP_GRID,
    EPS,
    N_IOU,
    SMOOTH_F,
    check_evidence,
    confidence_order,
    image_ids,
    smooth_at,
)

# Trapezoid weights of the 101-point grid: AP = sum_g w_g V_g; C[g] = sum_{g' < g} w_g', CX likewise w_g x_g.
AP_STEP = np.diff(AP_GRID)
AP_WEIGHT = np.concatenate(([AP_STEP[0] / 2], (AP_STEP[:-1] + AP_STEP[1:]) / 2, [AP_STEP[-1] / 2]))
AP_WEIGHT_BELOW = np.concatenate(([0.0], np.cumsum(AP_WEIGHT)))
AP_XWEIGHT_BELOW = np.concatenate(([0.0], np.cumsum(AP_WEIGHT * AP_GRID)))
# For integers 1 <= T <= n, the number of grid points x_g below the recall T/(n + eps) (np.interp's own
# float comparisons) is exactly ceil(100 T / n): linspace never lands below the correctly rounded g/100,
# and n + 1e-16 == n. Checked here, at import.
assert not any(AP_GRID[g] < g / 100 for g in range(101))
assert all(float(n) + EPS == float(n) for n in (1, 2, 3, 1000))
# ceil(100 T / n) is computed as ceil(T * m) with m = (100 / n) (1 - SHRINK): for integers T >= 0 and
# 1 <= n <= N_EXACT, 100 T / n is an integer or at least 1/n away from one, and T * m lies below it by
# (100 T / n) 1e-11 +- 3e-16 relative: never past an integer (1/n > 1.1e-9 > 100 * 1.1e-11), always
# below an integral value. Larger n (never in practice) take the division.
SHRINK = 1e-11
N_EXACT = 5e8
# The same in float32 (half the bytes): T exact (T < 2^24), m32 = fl32((100 / n) (1 - SHRINK32)), and for
# T <= n (100 T / n <= 100) T * m32 lies below 100 T / n by (2.5e-7 +- 1.2e-7) relative, i.e. by less than
# 3.7e-5 < 1/n: past no integer, always below an integral value (beyond n, c is capped at 100 anyway).
SHRINK32 = 2.5e-7
N_F32 = 27000
F32_INT = 1 << 24


class BootstrapEngine:
    """One evidence, prepared for exact per-resample metrics under image multiplicities.

    A resample is the evidence with image i drawn draws[r, i] times, i.e. the
    full-set prediction list (in the full-set confidence order) with each
    prediction repeated draws[r, img] times. A block of resamples is processed at
    once and transposed: the multiplicities as draws_t (images x resamples), every
    per-resample quantity as rows x resamples, so that each numpy call works
    on whole contiguous slabs (rows of draws_t gathered in precomputed orders).
    Per class, without expanding anything:

    - Prefix sums. W (cumulative weight of all predictions) is needed only at
      checkpoints (the run ends below and the cuts of the P/R curves), T_t
      (cumulative weight of the TPs at threshold t) only at run ends and
      cuts. One sequence holds the predictions (up to the class's last TP,
      unless the operating point needs more: see below), then the TPs of
      each threshold; its prefix sums are exact integer sums in three
      levels: blocks of 16 (uint8 while multiplicities are <= 15; streamed,
      the running sums stay in cache), superblocks of 16 blocks, and a scan
      over the superblocks.
    - AP. Within a run of adjacent TPs (no other prediction between them)
      precision never decreases ((T + k)/(W + k) >= T/W), so only the last TP
      of each run can carry the envelope: the AP reads T, W and p = T/W there
      only. compute_ap's curve after the envelope is flat between recall
      levels except on the first one: at grid point x it is E(j) = max
      precision of the TPs at or after j, j the first TP with recall above
      x; on [0, 1/n) it is the line from L0 (1 if the first real prediction
      is a TP, else E of the first TP) to E of the first TP; 0 past the last
      TP. A grid point x_g lies below recall T/n iff g < ceil(100 T/n), so
      with c(T) = min(100, ceil(100 T/n)) the levels first reached at run j
      number c(T_j) - c(T_j-1) and sum_h E(j_h) = sum_j S_j (c(T_j) -
      c(T_j-1)), S the suffix maximum of p (a scan). Then AP = 0.01
      sum_h E(j_h) - 0.005 E_1 + (L0 - E_1) a_first (a_first: the trapezoid
      weight of the first level's line). A run whose TPs were not drawn keeps
      its predecessor's T: it starts no level, and its precision is that of
      the real point before it, which never raises an envelope it belongs
      to.
    - P and R curves, at the 1000 grid confidences x: np.interp reads the
      last real prediction with conf >= x (prefix sums at a fixed cut) and
      interpolates towards the first copy of the next real one; both
      neighbours are found by probing the multiplicities, and the arithmetic
      is np.interp's. F1 = 2PR/(P+R+eps) summed over classes in class order,
      then ``smooth`` and argmax per resample, as ultralytics.
    - The operating point is searched, not scanned: bounds on every F1 curve
      need only the prefix sums (``_bounds``); smoothed, they rule out every
      grid point whose upper bound stays below the largest lower bound, and
      the curves are computed exactly (probes included) only on the columns
      that the remaining candidates' smoothing windows read. Those exact
      values are the ones the full computation gives, so the argmax (first
      maximum) is too. Past a class's last TP its W serves only those grid
      columns: its predictions there are summed only when the window
      reaches them.

    Every per-resample number equals ``ap_from_evidence`` on the resampled
    image list to float rounding (tested against it, and the operating
    point bit for bit against the exhaustive search): nothing is
    approximated.
    """

    def __init__(self, ev: Mapping[str, Any], tp_key: str = "tp") -> None:
        """``tp_key``: the true-positive matrix of the metric family to resample (``families.Family``'s
        ``evidence_key``: ``tp``, ``tp_mask``, ``tp_pose``)."""
        self.n_img = n_img = check_evidence(ev, tp_key)
        conf = np.asarray(ev["conf"], dtype=np.float64)
        tp = np.asarray(ev[tp_key], dtype=bool).reshape(-1, N_IOU)
        pred_cls = np.asarray(ev["pred_cls"]).astype(np.int64)
        pred_img = image_ids(ev["pred_offsets"])
        target_cls = np.asarray(ev["target_cls"]).astype(np.int64)
        tgt_img = image_ids(ev["target_offsets"])
        classes, nt = np.unique(target_cls, return_counts=True)
        self.classes: np.ndarray = classes
        self.support = nt.astype(np.int64)
        nc = len(self.classes)
        order = confidence_order(ev)  # ap_per_class's sort, as the validator made it
        # Predictions of each class with ground truth, in that order (a stable sort by class keeps it).
        ids = [a for a in (pred_cls, self.classes) if len(a)]
        lo_c = min((int(a.min()) for a in ids), default=0)
        hi_c = max((int(a.max()) for a in ids), default=0)
        lut = np.full(hi_c - lo_c + 1, nc, dtype=np.int16 if nc < np.iinfo(np.int16).max else np.int64)
        lut[self.classes - lo_c] = np.arange(nc)
        pci = lut[pred_cls - lo_c]  # class index, nc for a class without ground truth (int16: radix sort)
        known = np.less(pci, nc)
        order = order[np.argsort(pci[order], kind="stable")]
        bounds = np.searchsorted(pci[order], np.arange(nc + 1))
        img_o, conf_o, tp_o = pred_img[order], conf[order], tp[order]
        self.layouts: list[ClassLayout | None] = []  # None: a class without predictions (AP 0, curves 0)
        for ci in range(nc):
            sl = slice(bounds[ci], bounds[ci + 1])
            has_pred = bounds[ci + 1] > bounds[ci]
            self.layouts.append(ClassLayout(img_o[sl], conf_o[sl], tp_o[sl], n_img) if has_pred else None)
        # Per image: ground truth and predictions of each class, objects per (size bucket, found). A block's
        # n_l, predictions drawn and size recalls are exact integer products with its multiplicities (einsum:
        # a BLAS call's worker threads cost more than the product here).
        gt_img = image_ids(ev["gt_offsets"])
        size_key = np.asarray(ev["gt_bucket"], dtype=np.int64) * 2 + np.asarray(ev["gt_found"], dtype=bool)
        self.counts = np.concatenate((
            np.bincount(np.searchsorted(self.classes, target_cls) * n_img + tgt_img, minlength=nc * n_img),
            np.bincount(pci[known].astype(np.int64) * n_img + pred_img[known], minlength=nc * n_img),
            np.bincount(size_key * n_img + gt_img, minlength=6 * n_img),
        )).reshape(2 * nc + 6, n_img)
        self.counts32 = self.counts.astype(np.int32)
        self.counts_rowsum = int(self.counts.sum(1).max()) if self.counts.size else 0
        self.max_n = max((layout.n for layout in self.layouts if layout is not None), default=0)
        # Scratch bytes per resample of a block (the default block holds BLOCK_BYTES): the largest class's
        # run-level arrays and prefix sums, every class's grid W, T and exact P, R curves (at most the whole
        # grid), the bounds and curve scratch, the multiplicities.
        big = max((20 * kmajor.BLOCK * layout.n_run_blocks + 4 * layout.n_out + 8 * layout.n_ck + layout.n
                   + 2 * layout.n_out
                   for layout in self.layouts if layout is not None), default=0)
        self.bytes_per_resample = int(big + 24_000 * nc + 120_000 + 2 * n_img) + 1

    # ------------------------------------------------------------------ one block of resamples

    def block(self, draws: np.ndarray, work: Scratch | None = None) -> dict[str, np.ndarray]:
        """Metrics of the resamples of draws (rows: resamples, columns: image multiplicities)."""
        work = work or Scratch()
        draws = np.asarray(draws)
        R = draws.shape[0]
        nc = len(self.classes)
        kmax = int(draws.max()) if draws.size else 0
        draws_t = work.get("draws_t", (self.n_img + 1, R), narrowest_uint(kmajor.BLOCK * kmax))  # + a never-drawn image
        draws_t[:-1] = draws.T
        draws_t[-1] = 0
        drawn = np.greater(draws_t, 0, out=work.get("drawn", draws_t.shape, bool))
        # Per resample: ground truth and predictions drawn per class, objects per (size bucket, found).
        if kmax * self.counts_rowsum < np.iinfo(np.int32).max:  # int32 sums cannot overflow: the faster einsum
            drawn_counts = np.einsum("ci,ri->cr", self.counts32, draws.astype(np.int32, copy=False))
        else:
            drawn_counts = np.einsum("ci,ri->cr", self.counts, draws.astype(np.int64))
        drawn_counts = drawn_counts.astype(np.float64)
        n_l, w_tot, sg = drawn_counts[:nc], drawn_counts[nc : 2 * nc], drawn_counts[2 * nc :].T.reshape(R, 3, 2)
        present = n_l > 0
        npres = present.sum(0)
        den = np.maximum(npres, 1)
        ap = np.zeros((R, nc, N_IOU))
        lo = np.zeros((1000, R))  # bounds on the summed F1 curves
        hi = np.zeros((1000, R))
        state: list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]] | None] = []
        with np.errstate(invalid="ignore", divide="ignore"):
            for ci, layout in enumerate(self.layouts):
                if layout is None:  # no prediction of the class: AP 0, curves 0
                    state.append(None)
                    continue
                n = np.maximum(n_l[ci], 1.0)
                has_pred = w_tot[ci] > 0
                sums, w_floor = self._prefix(layout, layout.head, draws_t, kmax, work)
                first_tp = self._first_tp(layout, drawn, has_pred)
                ap[:, ci, :] = self._ap(layout, sums, w_floor, n, first_tp, kmax * layout.max_m < F32_INT, work).T
                grid = operating_point.bounds(layout, sums, n, w_tot[ci], has_pred & present[ci], lo, hi, ci, work)
                state.append((n, has_pred, grid))
            # The operating point: the smoothed mean F1's argmax can only lie where its upper bound reaches the
            # largest lower bound; the F1 curves are computed exactly on the columns those points smooth over.
            cand, a, b = operating_point.candidates(lo, hi, den, npres)
            f1_sum = np.zeros((b + 1 - a, R))
            pr: list[tuple[np.ndarray, np.ndarray] | None] = []
            for ci, layout in enumerate(self.layouts):
                st = state[ci]
                if st is None or layout is None or a > b:
                    pr.append(None)
                    continue
                n, has_pred, grid = st
                if a < layout.n_tail:  # the window reaches the tail columns: W there needs every prediction
                    sums = self._prefix(layout, layout.full, draws_t, kmax, work)[0]
                    sums.take(layout.cut_w_row[a : layout.n_tail], axis=0, out=grid[0][a : layout.n_tail], mode="clip")
                P, Rc, f1 = operating_point.curves(layout, grid, drawn, n, has_pred, a, b, ci, work)
                f1 *= present[ci]
                f1_sum += f1
                pr.append((P, Rc))
        idx = np.zeros(R, dtype=np.intp)
        if a <= b:
            mean_f1 = (f1_sum / den).T  # exact on the columns a..b, which every candidate's smoothing reads
            first = cand.argmax(1)
            last = 999 - cand[:, ::-1].argmax(1)
            for r in np.flatnonzero(npres).tolist():
                c0, c1 = int(first[r]), int(last[r])
                sm = smooth_at(mean_f1[r], c0, c1, SMOOTH_F, offset=a)
                sm[~cand[r, c0 : c1 + 1]] = -np.inf  # the first maximum over the candidates is smooth's argmax
                idx[r] = c0 + int(sm.argmax())
        p_i = np.zeros((R, nc))
        r_i = np.zeros((R, nc))
        cols = np.arange(R)
        at = np.clip(idx - a, 0, max(b - a, 0))  # (resamples without any class present: not read)
        for ci, curves in enumerate(pr):
            if curves is not None:
                p_i[:, ci] = curves[0][at, cols]
                r_i[:, ci] = curves[1][at, cols]
        absent = ~present.T
        ap[absent] = np.nan
        p_i[absent] = 0.0
        r_i[absent] = 0.0
        mp = np.where(npres > 0, p_i.sum(1) / den, 0.0)
        mr = np.where(npres > 0, r_i.sum(1) / den, 0.0)
        map50 = np.where(npres > 0, np.nansum(ap[:, :, 0], 1) / den, 0.0)
        map5095 = np.where(npres > 0, np.nansum(ap.sum(2), 1) / (den * N_IOU), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(mp + mr > 0, 2 * mp * mr / (mp + mr), 0.0)
            size = sg[:, :, 1] / sg.sum(2)  # found / total; NaN: no object of the bucket drawn
        return {
            "mAP50": map50, "mAP50_95": map5095, "precision": mp, "recall": mr, "f1": f1,
            "small_object_recall": size[:, 0], "medium_object_recall": size[:, 1],
            "large_object_recall": size[:, 2], "ap50": ap[:, :, 0],
        }

    @staticmethod
    def _prefix(layout: ClassLayout, plan: PrefixPlan, draws_t: np.ndarray, kmax: int,
                work: Scratch) -> tuple[np.ndarray, np.ndarray]:
        """Exact integer prefix sums, as the plan reads them. sums (n_out, R): see ``ClassLayout``; w_floor:
        max(W, 1) at the checkpoints up to the last TP, then an inf row (float64)."""
        R = draws_t.shape[1]
        nb2 = plan.nb2
        m = plan.m
        # Level 1, streamed: the running sums of the blocks of 16 (small: they stay in cache), read after
        # step k at the outputs of step k.
        run = work.get("run", (kmajor.BLOCK * nb2, R), draws_t.dtype)
        tmp = work.get("runtmp", (kmajor.BLOCK * nb2, R), draws_t.dtype)
        y = work.get("y", (m, R), draws_t.dtype)
        kb = plan.k_bounds
        draws_t.take(plan.gather[0], axis=0, out=run, mode="clip")
        run.take(plan.o_blk[kb[0] : kb[1]], axis=0, out=y[kb[0] : kb[1]], mode="clip")
        for k in range(1, kmajor.BLOCK):
            draws_t.take(plan.gather[k], axis=0, out=tmp, mode="clip")
            run += tmp
            run.take(plan.o_blk[kb[k] : kb[k + 1]], axis=0, out=y[kb[k] : kb[k + 1]], mode="clip")
        # Level 2: each block's exclusive prefix in its superblock; level 3: the superblocks' exclusive
        # prefix from the start of their segment.
        dt = np.int32 if kmax * kmajor.SUPERBLOCK * (nb2 + 1) < np.iinfo(np.int32).max else np.int64
        X2 = work.get("X2", (kmajor.BLOCK, nb2, R), dt)
        X2[0] = 0
        X2[1:] = run.reshape(kmajor.BLOCK, nb2, R)[:-1]
        for k in range(2, kmajor.BLOCK):
            np.add(X2[k], X2[k - 1], out=X2[k])
        last = run[(kmajor.BLOCK - 1) * nb2 :]  # the superblocks' last blocks
        E2 = X2[kmajor.BLOCK - 1] + last
        scan_rows(E2, np.add)  # inclusive scan of the superblock totals
        E2 -= X2[kmajor.BLOCK - 1]
        E2 -= last
        E2 -= E2.take(plan.base2, axis=0)
        X2 += E2[None]
        sums = work.get("sums", (layout.n_out, R), dt)
        X2.reshape(-1, R).take(plan.o_x2, axis=0, out=sums[:m], mode="clip")
        sums[:m] += y.take(plan.o_unsort, axis=0, out=work.get("yu", (m, R), draws_t.dtype), mode="clip")
        sums[layout.zero] = 0
        w_floor = work.get("w_floor", (layout.n_ck + 1, R), np.float64)
        ck = layout.n_slot + layout.n_t0
        np.maximum(sums[ck : ck + layout.n_ck_head], 1, out=w_floor[: layout.n_ck_head])
        w_floor[layout.n_ck] = np.inf
        return sums, w_floor

    def _ap(self, layout: ClassLayout, sums: np.ndarray, w_floor: np.ndarray, n: np.ndarray, first_tp: np.ndarray,
            exact32: bool, work: Scratch) -> np.ndarray:
        """AP of one class at the ten thresholds (10, R); 0 for a threshold without a drawn TP."""
        R = sums.shape[1]
        out = np.zeros((N_IOU, R))
        if not len(layout.thresholds_with_tp):
            return out
        G = layout.n_run_blocks
        shape = (kmajor.BLOCK, G, R)
        t_runs = sums[: kmajor.BLOCK * G].reshape(shape)  # T at the run slots
        # every TP of the threshold:
        t_all = t_runs.reshape(-1, R).take(layout.last_run_slot[layout.thresholds_with_tp], axis=0)
        prec = w_floor.take(layout.slot_checkpoint, axis=0, out=work.get("prec", (kmajor.BLOCK * G, R), np.float64),
                            mode="clip").reshape(shape)
        np.divide(t_runs, prec, out=prec)  # precision at each run's last TP (padding: T / inf = 0)
        # Suffix maximum per threshold: within blocks, then over each threshold's blocks.
        for k in range(kmajor.BLOCK - 2, -1, -1):
            np.maximum(prec[k], prec[k + 1], out=prec[k])
        bt = work.get("bt", (layout.maxnb * N_IOU + 1, R), np.float64)
        bt.fill(0.0)
        bt[layout.bt_row] = prec[0]
        scan_rows(bt[:-1].reshape(layout.maxnb, N_IOU * R), np.maximum, reverse=True)
        np.maximum(prec, bt.take(layout.bt_next, axis=0, mode="clip")[None], out=prec)
        # Levels first reached at each run: c(T_j) - c(T_j-1), c(T) = min(100, ceil(100 T / n)) (see SHRINK,
        # SHRINK32); T <= n unless an image holds more TPs of the class than objects (not ultralytics').
        if n.max() < N_F32 and exact32:
            levels = work.get("C32", shape, np.float32)
            levels[...] = t_runs
            levels *= (100.0 / n * (1.0 - SHRINK32)).astype(np.float32)
        else:
            levels = work.get("C64", shape, np.float64)
            if n.max() <= N_EXACT:
                np.multiply(t_runs, 100.0 / n * (1.0 - SHRINK), out=levels)
            else:
                np.multiply(t_runs, 100.0, out=levels)
                np.divide(levels, n, out=levels)
        np.ceil(levels, out=levels)
        if np.any(t_all > n):
            np.minimum(levels, 100.0, out=levels)
        new_levels = work.get("new_levels", shape, levels.dtype)
        np.subtract(levels[1:], levels[:-1], out=new_levels[1:])
        np.subtract(levels[0, 1:], levels[kmajor.BLOCK - 1, :-1], out=new_levels[0, 1:])
        new_levels[0, layout.g_first] = levels[0, layout.g_first]  # a threshold's first run starts from 0 levels
        e1 = prec[0, layout.g_first]  # E at the first TP: the maximum precision
        prec *= new_levels
        sum_e = np.add.reduceat(prec.sum(0), layout.g_first, axis=0)
        g1 = np.ceil(100.0 / n).astype(np.intp)  # grid points on the first recall level [0, 1/n)
        a_first = AP_WEIGHT_BELOW[g1] - AP_XWEIGHT_BELOW[g1] * n
        l0 = np.where(first_tp[layout.thresholds_with_tp], 1.0, e1)
        val = 0.01 * sum_e - 0.005 * e1 + (l0 - e1) * a_first
        out[layout.thresholds_with_tp] = np.where(t_all > 0, val, 0.0)
        return out

    @staticmethod
    def _first_tp(layout: ClassLayout, drawn: np.ndarray, has_pred: np.ndarray) -> np.ndarray:
        """(10, R): whether the first drawn prediction of the class is a TP at each threshold."""
        R = drawn.shape[1]
        pos = np.zeros(R, dtype=np.intp)
        todo = np.flatnonzero(has_pred)
        p = 0
        while todo.size:
            f = drawn[layout.img[p], todo]
            pos[todo[f]] = p
            todo = todo[~f]
            p += 1
        out = layout.tp[pos].T.copy()
        out[:, ~has_pred] = False
        return out
