"""The operating point of every resample: bounds on the F1 curves, the candidate grid points, the exact
curves on the columns those read (``engine.BootstrapEngine.block`` calls these in that order).

ultralytics takes the operating point at the argmax of the smoothed mean F1
curve over its 1000-point confidence grid. Bounds on every class's F1 curve
need only the prefix sums (``bounds``); smoothed, they rule out every grid
point whose upper bound stays below the largest lower bound
(``candidates``); the P, R and F1 curves are then computed exactly
(``curves``, with ``probe`` finding each cut's drawn neighbours) only on
the columns the remaining candidates' smoothing windows read.
"""

from __future__ import annotations

import numpy as np

from evaluation.stats.layout import PROBE, ClassLayout, Scratch
from evaluation.stats.reference import EPS, PR_GRID, SMOOTH_F


def bounds(layout: ClassLayout, sums: np.ndarray, n: np.ndarray, w_tot: np.ndarray, live: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, ci: int, work: Scratch) -> tuple[np.ndarray, np.ndarray]:
    """Add to lo / hi (1000, R) bounds of the class's F1 curve (0 where not live: absent or nothing
    drawn), without probing. Between a cut's last real point and the next, P lies in [T/(W+1),
    (T+1)/(W+1)] and R in [T/ne, (T+1)/ne] (T, W before the cut); F1 = 2PR/(P+R) grows with both, and
    at those corners it is 2T/(W+1+ne) and 2(T+1)/(W+1+ne) (eps dropped: far below the candidates'
    slack; no real point before the cut: F1 = 0, inside the bounds). Past the class's last TP (the
    tail), T is every TP, R = T/ne exactly and P lies in [T/(W_all+1), T/W_last]. Returns W and T
    (threshold 0) before each cut (the tail's W not yet read)."""
    R = sums.shape[1]
    nt = layout.n_tail
    W = work.get(f"Wc{ci}", (1000, R), sums.dtype)
    T0 = work.get(f"T0c{ci}", (1000, R), sums.dtype)
    sums.take(layout.cut_w_row[nt:], axis=0, out=W[nt:], mode="clip")
    sums.take(layout.cut_t0_row, axis=0, out=T0, mode="clip")
    ne = n + EPS
    g = 2.0 * live
    d = work.get("bd", (1000 - nt, R), np.float64)
    f = work.get("bf", (1000 - nt, R), np.float64)
    np.add(W[nt:], 1.0 + ne, out=d)
    np.multiply(T0[nt:], g, out=f)
    f /= d
    lo[nt:] += f
    np.divide(g, d, out=d)
    f += d
    hi[nt:] += f
    if nt:
        t = T0[0].astype(np.float64)  # the tail's T: every TP at threshold 0
        r_t = t / ne
        for p_t, acc in ((t / (w_tot + 1.0), lo), (t / np.maximum(sums[layout.w_last], 1.0), hi)):
            acc[:nt] += np.where(live, 2 * p_t * r_t / (p_t + r_t + EPS), 0.0)
    return W, T0


def candidates(lo: np.ndarray, hi: np.ndarray, den: np.ndarray,
                npres: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Per resample, the grid points whose smoothed mean F1 can be the largest (R, 1000); and the columns
    [a, b] every such point's smoothing window reads (a > b: none)."""
    width = round(1000 * SMOOTH_F * 2) // 2 + 1  # smooth's box filter, its edges repeated half times
    half = width // 2

    def box(v: np.ndarray) -> np.ndarray:
        v = (v / den).T
        padded = np.concatenate((np.repeat(v[:, :1], half, 1), v, np.repeat(v[:, -1:], half, 1)), 1)
        c = np.zeros((padded.shape[0], padded.shape[1] + 1))
        np.cumsum(padded, axis=1, out=c[:, 1:])
        return (c[:, width:] - c[:, :-width]) / width

    slo, shi = box(lo), box(hi)
    # Rounding in the bounds and in these sums stays far below the slack (values <= 1, ~1100 terms).
    cand = shi >= slo.max(1, keepdims=True) - 1e-8
    cand[npres == 0] = False
    rows = np.flatnonzero(cand.any(1))
    if not len(rows):
        return cand, 0, -1
    first = int(cand[rows].argmax(1).min())
    last = 999 - int(cand[rows, ::-1].argmax(1).min())
    return cand, max(first - half, 0), min(last + half, 999)


def probe(layout: ClassLayout, drawn: np.ndarray, imgs: np.ndarray, tab: np.ndarray, nxt: np.ndarray, step: int,
           src: np.ndarray, out: np.ndarray, work: Scratch) -> np.ndarray:
    """Per column and resample, the table value of the first drawn candidate (column 0: none drawn)."""
    R = drawn.shape[1]
    S = PROBE
    nq = len(nxt)
    hit = drawn.take(imgs, axis=0, out=work.get("hit", (S * nq, R), bool), mode="clip")
    hit = hit.reshape(S, nq, R).view(np.uint8)
    code = work.get("code", (nq, R), np.uint8)  # S - (index of the first hit), 0: no hit
    code[...] = hit[S - 1]
    for s in range(S - 2, -1, -1):
        np.maximum(code, hit[s] * np.uint8(S - s), out=code)
    ix = work.get("ix", (nq, R), np.intp)
    np.add(code, (np.arange(nq) * (S + 1))[:, None], out=ix)
    tab.take(ix, out=out, mode="clip")
    # The few columns without a hit: the following candidates, a window at a time.
    todo = np.flatnonzero(code.ravel() == 0)
    if not todo.size:
        return out
    q, r = np.divmod(todo, R)
    p = nxt[q]
    flat = out.ravel()
    dflat = drawn.ravel()
    win = np.arange(0, 16 * step, step)
    while todo.size:
        ok = (p >= 0) & (p < layout.n)
        todo, r, p = todo[ok], r[ok], p[ok]
        pos = p[:, None] + win
        pos = np.where((pos >= 0) & (pos < layout.n), pos, layout.n)
        h = dflat[layout.img_pad[pos] * R + r[:, None]]
        first = h.argmax(1)
        f = h[np.arange(len(first)), first]
        flat[todo[f]] = src[pos[f, first[f]]]
        todo, r, p = todo[~f], r[~f], p[~f] + 16 * step
    return out


def curves(
    layout: ClassLayout, grid: tuple[np.ndarray, np.ndarray], drawn: np.ndarray, n: np.ndarray,
    has_pred: np.ndarray, a: int, b: int, ci: int, work: Scratch,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P, R and F1 at the grid confidences a..b (columns x resamples): np.interp(-x, -conf, precision |
    recall, left=1 | 0) = value + slope * (cl - x), ultralytics' arithmetic. P and R live in this class's
    own buffers (read again at the operating point)."""
    R = drawn.shape[1]
    sl = slice(a, b + 1)
    shape = (b + 1 - a, R)
    cl = probe(layout, drawn, layout.l_img[:, sl].ravel(), layout.l_tab[sl].ravel(), layout.l_next[sl], -1, layout.conf,
                     work.get("cl", shape, np.float64), work)
    right = probe(layout, drawn, layout.r_img[:, sl].ravel(), layout.r_tab[sl].ravel(), layout.r_next[sl], 1,
                        layout.conf_tp0, work.get("right", shape, np.complex128), work)
    cr, tq = right.real, right.imag
    Wc = work.get("Wc", shape, np.float64)
    Wc[...] = grid[0][sl]
    T0c = work.get("T0c", shape, np.float64)
    T0c[...] = grid[1][sl]
    no_left = np.equal(Wc, 0, out=work.get("no_left", shape, bool))  # then T0c = 0 too
    flat = np.isnan(cr, out=work.get("flat", shape, bool))  # past the last point: its value
    flat |= no_left  # before the first: left=1 / 0
    ne = n + EPS
    P = work.get(f"P{ci}", shape, np.float64)
    Rc = work.get(f"R{ci}", shape, np.float64)
    sp = work.get("sp", shape, np.float64)
    sr = work.get("sr", shape, np.float64)
    dx = work.get("dx", shape, np.float64)
    t1 = work.get("t1", shape, np.float64)
    np.divide(T0c, Wc, out=P)  # pl
    P[no_left] = 1.0
    np.divide(T0c, ne, out=Rc)  # rl (0 where no_left)
    np.subtract(cl, cr, out=dx)
    np.add(T0c, tq, out=t1)
    Wc += 1
    np.divide(t1, Wc, out=sp)
    sp -= P
    sp /= dx
    np.divide(t1, ne, out=sr)
    sr -= Rc
    sr /= dx
    sp[flat] = 0.0
    sr[flat] = 0.0
    none = ~has_pred  # no prediction of the class drawn: ultralytics leaves the curves at 0
    P[:, none] = 0.0
    Rc[:, none] = 0.0
    # P = slope * (cl - x) + value (np.interp's arithmetic), likewise R; F1 = 2PR / (P + R + eps).
    np.subtract(cl, PR_GRID[sl, None], out=dx)
    sp *= dx
    P += sp
    sr *= dx
    Rc += sr
    f1 = np.multiply(P, 2, out=dx)
    f1 *= Rc
    np.add(P, Rc, out=sp)
    sp += EPS
    f1 /= sp
    return P, Rc, f1
