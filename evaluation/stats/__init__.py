"""Comparison statistics from stored evidence, in parts (pure numpy: no torch, no ultralytics).

Input is the per-image evidence of ``evaluation.evidence`` (one dict of
arrays per evaluation). The modules, each importable on its own (this
package imports none of them, so the daemon loading the gates loads only
the gates):

- ``reference``: ``ap_from_evidence``, the plain recomputation of
  ultralytics' ``ap_per_class`` (per-class AP50 and AP50-95, mAP, P and R at
  the operating point, f1) and size-bucket recall on any image multiset; on
  the full image set it equals ultralytics' own numbers to float rounding.
- ``layout``, ``engine``, ``operating_point``: the vectorised engine that
  gives, for a block of resamples at once, the exact value ``reference``
  would give on every resampled image list (``engine.BootstrapEngine``).
- ``bootstrap``: the paired image-level bootstrap (``paired_bootstrap``,
  ``statistics``: the worker entry point), with speed resampled by batches
  beside the images (``evaluation.speed``), and the flip table.
- ``gates``: the promotion gates: their one set of defaults, their
  validation, and ``evaluate_gates`` on a comparison.

Conventions: differences are ``a - b``, the spec's sign (a compare's
model_a minus model_b; in a promotion a is the candidate and b the baseline,
so ``diff`` is the candidate's gain; in an export check a is the export and
b its ``.pt``). Percentile
intervals at level ``1 - alpha``; the two-sided bootstrap p-value is
``min(1, 2 * min(P(d <= 0), P(d >= 0)))`` over the resampled differences, so
two identical inputs give diff 0, interval [0, 0], p 1, not significant.
``significant`` means the interval excludes 0. A metric with no value
(for example a size bucket without ground truth) has ``None`` everywhere; a
resample in which a metric is undefined (for example no small object was
drawn) is left out of that metric's interval (``n_valid`` counts the rest).

Size recall on a subset counts the stored ``gt_found`` flags, i.e. matches at
the operating point of the full evaluation (the threshold is not re-derived
per subset). Confidence ties between different predictions keep the order of
the full-set sort; only the full set is guaranteed bit-for-bit equal to an
ultralytics run (its sort of a different array could order ties otherwise).
"""
