"""How sure a promotion decision is: the score gain with its interval, and the reason in words.

Pure: no I/O. ``Promoter`` (daemon/promote/promotion.py) gathers the numbers (both
scores, the paired bootstrap of candidate against incumbent) and asks this
module to judge and word them. The rules (README, "Promotion"):

- the point rule: the candidate's score must exceed the baseline's by more
  than ``min_delta``;
- with ``require_significant`` (the default) the lower bound of the score
  gain's 95% interval must exceed ``min_delta`` too ("beyond noise"), and
  the other gates apply (``evaluation.stats.gates.evaluate_gates``);
- predictions identical to the incumbent's on every image are refused
  before any of that, whatever the timings say (only speed could differ).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evaluation.stats.gates import gain_basis, gates_active
from vocab.scoring import speed_score


@dataclass
class Decision:
    """One promotion decision, automatic or manual, as answered and as written to the ledger.

    ``decision``: ``promoted``, ``refused`` or ``rollback``. ``new_*`` is the candidate (or the checkpoint
    restored), ``previous_*`` what ``current.pt`` held. Every decision has the same fields; what a kind of
    decision does not have is null (a manual promotion has no gain, a first version no baseline).
    ``promotion_id`` is set once the ledger row is written.
    """

    decision: str
    reason: str
    new_sha256: str | None
    previous_sha256: str | None = None
    new_score: float | None = None
    previous_score: float | None = None
    version: int | None = None
    eval_id: int | None = None
    baseline_eval_id: int | None = None  # the evaluation the candidate was judged against
    dataset: str | None = None
    weights: dict[str, float] | None = None
    baseline: str | None = None
    gate_settings: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    gain: dict[str, Any] | None = None
    significance: dict[str, Any] | None = None
    export_parity: dict[str, Any] | None = None
    forced: str | None = None  # a manual promotion with force: the refusal it overrode
    cause: str | None = None  # a refusal that new data could change: "dataset" (judged on it), "export" (parity)
    promotion_id: int | None = None

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def promote(self, reason: str) -> None:
        self.decision, self.reason = "promoted", reason

    def refuse(self, reason: str) -> None:
        self.decision, self.reason = "refused", reason

    def public(self) -> dict[str, Any]:
        """The decision as the API answers it (job results, POST promote and rollback)."""
        return asdict(self)

    def details(self, job_id: str | None) -> dict[str, Any]:
        """The ledger row's ``details``: what its own columns do not hold."""
        return {"job_id": job_id, "gates": self.gates, "weights": self.weights, "baseline": self.baseline,
                "gate_settings": self.gate_settings, "significance": self.significance, "gain": self.gain,
                "export_parity": self.export_parity, "forced": self.forced, "cause": self.cause}


# What each basis is, in the words a reason uses.
BASIS_WORDS = {
    "score": "score gain",
    "accuracy_score": "accuracy-part gain",
}


@dataclass(frozen=True)
class Gain:
    """The candidate's gain over the baseline in ONE quantity, with the bootstrap interval of that quantity.

    ``basis`` names the quantity: ``score`` (the whole composite score; with statistics, its accuracy and
    speed resampled together) or ``accuracy_score`` (the score without its speed term, when the evidence
    has too few timed batches to resample speed). ``value`` is candidate - baseline of exactly that
    quantity, so ``value`` always lies in [``ci_low``, ``ci_high``]'s own terms. With ``accuracy_score``, the
    speed part is reported beside it, labelled and without an interval: ``speed`` holds both
    ``inference_ms`` and the difference of their speed scores. Without statistics (``ci_low`` None) the gain
    is the difference of the two composite scores.
    """

    basis: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    alpha: float = 0.05
    speed: dict[str, float | None] | None = None

    @classmethod
    def of(cls, new_score: float, baseline_score: float, stats: dict[str, Any] | None,
           inference_ms: tuple[float | None, float | None] = (None, None)) -> Gain:
        """The gain of a candidate (``new_score``, its ``inference_ms[0]``) over a baseline
        (``baseline_score``, ``inference_ms[1]``) given their paired bootstrap ``stats`` (None: none)."""
        if not stats:
            return cls(basis="score", value=new_score - baseline_score)
        basis = gain_basis(stats)
        s = stats.get("metrics", {}).get(basis) or {}
        speed = None
        if basis == "accuracy_score":
            a, b = inference_ms
            sa, sb = speed_score(a), speed_score(b)
            speed = {"inference_ms_candidate": a, "inference_ms_baseline": b,
                     "speed_score_diff": None if sa is None or sb is None else sa - sb}
        value = s.get("diff")
        return cls(basis=basis, value=new_score - baseline_score if value is None else float(value),
                   ci_low=s.get("ci_low"), ci_high=s.get("ci_high"), alpha=float(stats.get("alpha", 0.05)),
                   speed=speed)

    def words(self) -> str:
        """``score gain +0.0003 [-0.0041, +0.0047]``; an accuracy-part gain adds its speed part, labelled."""
        text = f"{BASIS_WORDS[self.basis]} {self.value:+.4f}"
        if self.ci_low is not None and self.ci_high is not None:
            text += f" [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"
        if self.speed is not None:
            a, b, d = (self.speed[k] for k in ("inference_ms_candidate", "inference_ms_baseline", "speed_score_diff"))
            if a is not None and b is not None and d is not None:
                text += (f" (the score without its speed term: too few timed batches for a speed interval; "
                         f"speed part: inference {b:.1f} -> {a:.1f} ms, speed score {d:+.4f}, no interval)")
            else:
                text += " (the score without its speed term: no timings to compare speed)"
        return text

    def public(self) -> dict[str, Any]:
        return asdict(self)


def identical_reason(gain: Gain, baseline_desc: str) -> str:
    return (f"{gain.words()}: predictions identical to {baseline_desc} on every image (same evidence): "
            "only timing differs, so nothing is gained")


def judge(gain: Gain, new_score: float, baseline_score: float, baseline_desc: str,
          gates: dict[str, Any], failures: list[dict[str, Any]]) -> tuple[str, str]:
    """(decision, reason) for a candidate with a scored baseline; ``failures``: the failed gates."""
    margin = float(gates["min_delta"])
    compared = f"score {new_score:.4f} {{}} {baseline_desc} {baseline_score:.4f} + min_delta {margin:.4f}"
    if not new_score > baseline_score + margin:
        return "refused", f"{gain.words()}: {compared.format('does not beat')}"
    if failures:
        noise = any(f["gate"] == "require_significant" for f in failures)
        return "refused", f"{gain.words()}: {'not beyond noise; ' if noise else ''}refused by promotion gates: " \
            + "; ".join(f"{f['gate']} ({f['subject']}): {f['reason']}" for f in failures)
    if gates.get("require_significant"):
        return "promoted", f"{gain.words()}: beyond noise; {compared.format('beats')}; gates passed"
    return "promoted", f"{gain.words()}: {compared.format('beats')}" + (
        "; gates passed" if gates_active(gates) else "")
