"""The engine's static layout of one class: what is read where, for every resample (no resample data here).

Built once per evidence (``engine.BootstrapEngine``), reused for every
block of resamples. Sequences are stored "k-major": element j of a sequence
cut in blocks of ``BLOCK`` sits at ``[j % BLOCK, j // BLOCK]``, so that each
in-block scan step is one contiguous slab over every block at once.

Names (each array's rows are read by the engine with ``take``):

- ``Scratch``: reusable scratch buffers of one thread.
- ``PrefixPlan``: how one class's integer prefix sums are computed: which
  image's multiplicity row to gather at each step (``gather``), and where
  each requested sum is read (``o_blk``, ``o_x2``, ``o_unsort``).
- ``ClassLayout``: per class, the predictions in the full-set confidence
  order (``img``, ``conf``, ``tp``), the rows of the prefix-sum matrix
  ("sums": run slots, T before the cuts, W at the checkpoints, a zero row),
  the runs of adjacent TPs per threshold (``n_run_blocks``,
  ``last_run_slot``, ``slot_checkpoint``) and, per grid confidence, the
  cut's rows (``cut_w_row``, ``cut_t0_row``) and the probe tables.

W = the drawn weight (copies) of all predictions up to a position; T_t =
that of the TPs at threshold t. A "cut" of grid confidence x is the number
of predictions with conf >= x (what ``np.interp(-x, -conf, ...)`` reads).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evaluation.stats.reference import N_IOU, PR_GRID

BLOCK = 16  # scan block length; a sequence j is stored "k-major", at [j % BLOCK, j // BLOCK]
SUPERBLOCK = BLOCK * BLOCK  # the prefix sequence's segments are padded to whole superblocks of BLOCK blocks
PROBE = 4  # probe candidates tried for every column at once (a miss on all, ~2%: 16 more at a time)
# Every take() into an out= array uses mode="clip" (the indices are in range by construction): the default
# mode="raise" writes through a temporary copy, 2-4x slower here.


def narrowest_uint(top: int) -> type:
    """The narrowest unsigned dtype holding 0..top."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return dt
    return np.int64


class Scratch:
    """Scratch arrays reused across classes and blocks by one thread (a fresh large array costs page
    faults on every use). ``get`` hands out a view of the buffer of that name."""

    def __init__(self) -> None:
        self.bufs: dict[str, np.ndarray] = {}
        self.views: dict[tuple[str, tuple[int, ...], Any], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        key = (name, shape, dtype)
        view = self.views.get(key)
        if view is not None:
            return view
        dt = np.dtype(dtype)
        size = math.prod(shape) * dt.itemsize
        buf = self.bufs.get(name)
        if buf is None or buf.nbytes < size:
            buf = self.bufs[name] = np.empty(max(size, 64), dtype=np.uint8)
            self.views = {k: v for k, v in self.views.items() if k[0] != name}
        view = self.views[key] = buf[:size].view(dt).reshape(shape)
        return view


def scan_kmajor(Z: np.ndarray, op: np.ufunc, reverse: bool = False) -> None:
    """In place inclusive scan (op: np.add, or np.maximum of non-negatives) of the k-major sequence Z
    (BLOCK, nb, ...): each in-block step is one contiguous slab, the block totals are scanned by
    ``scan_rows``, one broadcast pass combines. ``reverse``: a suffix scan."""
    B = Z.shape[0]
    if reverse:
        for k in range(B - 2, -1, -1):
            op(Z[k], Z[k + 1], out=Z[k])
        tot = Z[0].copy()
        scan_rows(tot, op, True)
        op(Z[:, :-1], tot[None, 1:], out=Z[:, :-1])
    else:
        for k in range(1, B):
            op(Z[k], Z[k - 1], out=Z[k])
        tot = Z[B - 1].copy()
        scan_rows(tot, op, False)
        op(Z[:, 1:], tot[None, :-1], out=Z[:, 1:])


def scan_rows(X: np.ndarray, op: np.ufunc, reverse: bool = False) -> None:
    """In place inclusive scan of X along axis 0 (rows in their natural order): a loop over the rows
    when there are few, else through a k-major copy (zero padding: neutral for both ops)."""
    L = X.shape[0]
    if L <= 2 * BLOCK:
        if reverse:
            for j in range(L - 2, -1, -1):
                op(X[j], X[j + 1], out=X[j])
        else:
            for j in range(1, L):
                op(X[j], X[j - 1], out=X[j])
        return
    rest = X.shape[1:]
    full, tail = divmod(L, BLOCK)
    Z = np.zeros((BLOCK, full + (tail > 0), *rest), dtype=X.dtype)
    Zv = Z.swapaxes(0, 1)  # (nb, BLOCK, ...) view: the natural order
    Zv[:full] = X[: full * BLOCK].reshape(full, BLOCK, *rest)
    if tail:
        Zv[full, :tail] = X[full * BLOCK :]
    scan_kmajor(Z, op, reverse)
    X[: full * BLOCK].reshape(full, BLOCK, *rest)[...] = Zv[:full]
    if tail:
        X[full * BLOCK :] = Zv[full, :tail]


def run_ends(rows: np.ndarray) -> np.ndarray:
    """Indices (into rows, sorted positions) of the last member of each run of consecutive positions."""
    if not len(rows):
        return np.zeros(0, dtype=np.intp)
    return np.concatenate((np.flatnonzero(np.diff(rows) != 1), [len(rows) - 1])).astype(np.intp)


class PrefixPlan:
    """How one class's prefix sums are computed (see ``BootstrapEngine._prefix``): the rows of KT to gather, in
    streaming order, and where the sums are read."""

    def __init__(self, segs: list[np.ndarray], out_seg: np.ndarray, out_idx: np.ndarray, dummy: int) -> None:
        # The prefix sequence: the segments (images of their items) one after the other, each padded to whole
        # superblocks; s = b2 * SUPERBLOCK + k2 * BLOCK + k is step k of block k2 * nb2 + b2.
        plen = [max(-(-len(s) // SUPERBLOCK), 1) * SUPERBLOCK for s in segs]
        offs = np.concatenate(([0], np.cumsum(plen))).astype(np.intp)
        seq = np.full(offs[-1], dummy, dtype=np.intp)
        for s, o in zip(segs, offs[:-1]):
            seq[o : o + len(s)] = s
        nb2 = int(offs[-1]) // SUPERBLOCK
        self.nb2 = nb2
        self.gather = np.ascontiguousarray(
            seq.reshape(nb2, BLOCK, BLOCK).transpose(2, 1, 0).reshape(BLOCK, BLOCK * nb2))
        # first superblock of the segment:
        self.base2 = np.repeat(offs[:-1] // SUPERBLOCK, np.asarray(plen) // SUPERBLOCK)
        # Outputs (in the order of the rows of O they fill): inclusive prefix of segment out_seg at out_idx.
        so = (offs[out_seg] + out_idx).astype(np.intp)
        self.m = len(so)
        k, k2, b2 = so % BLOCK, (so // BLOCK) % BLOCK, so // SUPERBLOCK
        # Level 1 is streamed: after step k the running block sums are read at the outputs of step k.
        by_k = np.argsort(k, kind="stable")
        self.k_bounds = np.searchsorted(k[by_k], np.arange(BLOCK + 1))
        self.o_blk = (k2 * nb2 + b2)[by_k]  # block of each output, in step order
        self.o_unsort = np.argsort(by_k).astype(np.intp)  # step order -> output order
        self.o_x2 = k2 * nb2 + b2  # row of the block's exclusive prefix, in output order


class ClassLayout:
    """Static, resample-independent data of one class with ground truth and predictions: where every
    per-resample quantity is read (see ``BootstrapEngine``).

    Rows of the sums (the prefix-sum matrix): the run slots (k-major, padded: T), T (threshold 0) before
    the cuts, W at the checkpoints (those up to the last TP, then those of the "tail" cuts past it), a 0
    row. The head plan fills the sums without the tail checkpoints, summing the predictions up to the last
    TP only; the full plan fills all of it.
    """

    def __init__(self, img: np.ndarray, conf: np.ndarray, tp: np.ndarray, n_img: int) -> None:
        n = len(img)
        self.n = n
        self.img = img  # image of each prediction, in the full-set confidence order
        self.conf = conf
        self.tp = tp  # (n, 10) bool
        self.conf_tp0 = conf + 1j * tp[:, 0]  # what the right-hand probes read
        dummy = n_img  # an image never drawn (the zero row appended to the multiplicities)
        members = [np.flatnonzero(tp[:, t]) for t in range(N_IOU)]
        self.max_m = max(len(m) for m in members)
        last_tp = max((int(m[-1]) for m in members if len(m)), default=-1)
        run_end = [run_ends(m) for m in members]  # last TP of each run of adjacent TPs, per threshold
        end_pos = [m[e] for m, e in zip(members, run_end)]
        # np.interp(-x, -conf, ...) reads, for each grid x, the last prediction with conf >= x: the "cut"
        # of x is the number of predictions with conf >= x (it falls as x grows).
        q = np.searchsorted(-conf, -PR_GRID, side="right")
        tail = q - 1 > last_tp  # cuts past the last TP: columns 0 .. n_tail - 1
        self.n_tail = int(np.count_nonzero(tail))
        # W is read at the checkpoints: every run end and the last prediction before each cut.
        at_last = np.array([last_tp] if last_tp >= 0 else [], dtype=np.intp)
        ck_head = np.unique(np.concatenate([at_last, *end_pos, q[(q > 0) & ~tail] - 1])).astype(np.intp)
        ck_tail = np.unique(q[tail] - 1)
        ckpos = np.concatenate((ck_head, ck_tail)).astype(np.intp)
        self.n_ck_head, self.n_ck = len(ck_head), len(ckpos)
        t0_cut = np.searchsorted(members[0], q)  # TPs (threshold 0) before each cut
        t0_idx = np.unique(t0_cut[t0_cut > 0] - 1)
        n_t0 = len(t0_idx)
        self.n_t0 = n_t0

        # Run-level k-major layout (BLOCK, G): run j of threshold t at [j % BLOCK, gstart[t] + j // BLOCK]; a
        # threshold's last block is padded with its last run (no new level; its precision is read as T / inf).
        nr = np.array([len(e) for e in run_end])
        nbt = -(-nr // BLOCK)
        gstart = np.concatenate(([0], np.cumsum(nbt)))
        G = max(int(gstart[-1]), 1)
        self.n_run_blocks = G
        seg = np.zeros((BLOCK, G), dtype=np.intp)  # slot: segment (1 + threshold) and index of its run end
        idx = np.zeros((BLOCK, G), dtype=np.intp)
        rw = np.full((BLOCK, G), self.n_ck, dtype=np.intp)  # Wf row of each slot (n_ck: the inf row, padding)
        self.last_run_slot = np.zeros(N_IOU, dtype=np.intp)  # slot of a threshold's last run: all of its TPs
        for t in range(N_IOU):
            if not nr[t]:
                continue
            j = np.arange(nbt[t] * BLOCK)
            jj = np.minimum(j, nr[t] - 1)
            cell = (j % BLOCK, gstart[t] + j // BLOCK)
            seg[cell] = t + 1
            idx[cell] = run_end[t][jj]
            rw[cell] = np.where(j < nr[t], np.searchsorted(ck_head, end_pos[t][jj]), self.n_ck)
            last = nr[t] - 1
            self.last_run_slot[t] = (last % BLOCK) * G + gstart[t] + last // BLOCK
        self.slot_checkpoint = rw.ravel()
        self.n_slot = BLOCK * G
        out_seg = np.concatenate((seg.ravel(), np.ones(n_t0, np.intp), np.zeros(self.n_ck, np.intp)))
        out_idx = np.concatenate((idx.ravel(), t0_idx, ckpos))
        segs = [img[m] for m in members]
        m_head = self.n_slot + n_t0 + self.n_ck_head
        self.head = PrefixPlan([img[: last_tp + 1], *segs], out_seg[:m_head], out_idx[:m_head], dummy)
        self._full_args = ([img, *segs], out_seg, out_idx, dummy)
        self._full: PrefixPlan | None = None
        self.zero = self.n_slot + n_t0 + self.n_ck  # the 0 row
        self.n_out = self.zero + 1
        nz = np.flatnonzero(nr)
        self.thresholds_with_tp = nz  # thresholds with a TP
        self.g_first = gstart[nz]  # first block of each of them
        # Block-level suffix of the envelope, per threshold: block g of t is row d * N_IOU + t (d = g - gstart[t]).
        t_of = np.repeat(np.arange(N_IOU), nbt)
        d_of = np.arange(int(gstart[-1])) - gstart[t_of]
        self.maxnb = max(int(nbt.max()), 1)
        self.bt_row = d_of * N_IOU + t_of
        self.bt_next = np.where(d_of + 1 >= nbt[t_of], self.maxnb * N_IOU, (d_of + 1) * N_IOU + t_of)

        # Grid level (1000 columns): rows of O holding W and T (threshold 0) before each cut; W at the last TP.
        z, ck0 = self.zero, self.n_slot + n_t0
        cki = np.where(tail, self.n_ck_head + np.searchsorted(ck_tail, q - 1), np.searchsorted(ck_head, q - 1))
        self.cut_w_row = np.where(q > 0, ck0 + cki, z)
        self.cut_t0_row = np.where(t0_cut > 0, self.n_slot + np.searchsorted(t0_idx, t0_cut - 1), z)
        self.w_last = ck0 + int(np.searchsorted(ck_head, last_tp)) if last_tp >= 0 else z
        # Probes: left candidates q-1-s (last drawn before the cut), right q+s (first drawn from it). Tables:
        # column c = candidate PROBE - c, column 0 = none drawn (left: 0, any finite abscissa, the curve is flat
        # there; right: NaN).
        S = PROBE
        steps = np.arange(S)
        lp = q[None, :] - 1 - steps[:, None]
        rp = q[None, :] + steps[:, None]
        lok, rok = lp >= 0, rp < n
        lc, rc = np.clip(lp, 0, n - 1), np.clip(rp, 0, n - 1)
        self.l_img = np.where(lok, img[lc], dummy)  # (S, 1000)
        self.r_img = np.where(rok, img[rc], dummy)
        self.l_tab = np.zeros((len(q), S + 1))
        self.l_tab[:, 1:] = np.where(lok, conf[lc], 0.0)[::-1].T
        self.r_tab = np.full((len(q), S + 1), np.nan, dtype=np.complex128)
        self.r_tab[:, 1:] = np.where(rok, self.conf_tp0[rc], np.nan)[::-1].T
        self.l_next, self.r_next = q - 1 - S, q + S  # where a miss on every candidate goes on
        self.img_pad = np.concatenate((img, [dummy]))  # out of range: the never-drawn image

    @property
    def full(self) -> PrefixPlan:
        """The full plan, built on first use (threads racing here build equal plans)."""
        if self._full is None:
            self._full = PrefixPlan(*self._full_args)
        return self._full
