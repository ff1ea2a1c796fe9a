"""Promotion of ``<name>/current.pt``: decisions, the atomic swap, the ledger, rollback.

Rules (DESIGN.md): the candidate must beat the incumbent -- the evaluation of
what ``current.pt`` holds now, on the same dataset content, rescored with the
candidate's weights (evaluated first when it has none) -- by more than
``promotion.min_delta``; with ``baseline = "dataset_best"`` it must beat the
best score on that dataset's leaderboard instead (the spec's literal rule).
The first version of a model (no ``current.pt``) is promoted. Every decision,
promoted or refused, and every rollback is a ``promotions`` row with both
checkpoints' sha256, both scores and the reason.

Order of effects: the file first (atomic), then the ledger row; at start-up
``reconcile`` records any ``current.pt`` the ledger does not explain. Each
promoted checkpoint is also kept in a content-addressed store, so rollback
restores the previous bytes even when its ``v<n>.pt`` is gone. One lock per
model serialises decisions.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

from daemon.clock import Clock, iso, utcnow
from daemon.config import PromotionConfig
from daemon.evaluations import EvalSpec, Evaluations
from daemon.export_parity import ExportParity
from daemon.files import ContentChanged, atomic_copy, remove_stray_tmp
from daemon.queue import JobContext
from daemon.workers import Executor
from evaluation.datasets import file_sha256
from evaluation.errors import Conflict, InvalidRequest, NotFound, PathNotAllowed
from evaluation.models import CURRENT, check_name, list_versions
from evaluation.scoring import composite_score, resolve_weights
from store import promotions, results
from store.database import Database

log = logging.getLogger(__name__)


def _sha_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


class Promoter:
    """Decides and performs promotions (see module contract)."""

    def __init__(self, db: Database, evaluations: Evaluations, executor: Executor, models_root: Path,
                 store_dir: Path, config: PromotionConfig, clock: Clock = utcnow) -> None:
        self.db = db
        self.evaluations = evaluations
        self.executor = executor
        self.models_root = models_root
        self.store_dir = store_dir
        self.config = config
        self.clock = clock
        self.export_parity = ExportParity(evaluations, executor, config)
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def current_path(self, name: str) -> Path:
        """``<root>/<name>/current.pt``; PathNotAllowed if the folder or the file is a link that leaves
        the root (reading or writing through it would touch files outside the models root)."""
        path = self.models_root / check_name(name) / CURRENT
        if not path.resolve().is_relative_to(self.models_root.resolve()):
            raise PathNotAllowed(f"{path} is a link that leaves the models root")
        return path

    # -- automatic decisions -------------------------------------------------------------------
    async def consider(self, spec: EvalSpec, result: dict[str, Any], ctx: JobContext, actor: str,
                       gates: dict[str, Any] | None = None) -> dict[str, Any]:
        """Promote ``spec``'s checkpoint if it beats the incumbent and passes the gates; record the
        decision either way. ``gates`` overrides the configured gates for this decision."""
        async with self._lock(spec.model_name):
            decision = await self._decide(spec, result, ctx, self.gate_settings(gates))
            decision = await self.export_parity.apply(spec, result, ctx, decision, actor)
            if decision["decision"] == "promoted":
                try:
                    await self._swap(spec.model_name, Path(spec.model_path), result["checkpoint_sha256"])
                except ContentChanged as exc:
                    decision.update(decision="refused", reason=f"not promoted: {exc}")
            decision["promotion_id"] = await self._record(spec.model_name, decision, actor, ctx.job.id)
            log.info("promotion of %s v%s: %s (%s)", spec.model_name, spec.model_version,
                     decision["decision"], decision["reason"])
            return decision

    def gate_settings(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The promotion gates in force: the config's, overridden per request (validated at submit)."""
        c = self.config
        gates = {
            "require_significant": c.require_significant,
            "min_delta": c.min_delta,
            "max_class_regression": c.max_class_regression if c.max_class_regression >= 0 else None,
            "min_class_support": c.min_class_support,
            "max_size_recall_regression": c.max_size_recall_regression if c.max_size_recall_regression >= 0 else None,
        }
        gates.update(overrides or {})
        return gates

    async def _decide(self, spec: EvalSpec, result: dict[str, Any], ctx: JobContext,
                      gates: dict[str, Any]) -> dict[str, Any]:
        weights = resolve_weights(spec.weights)
        new_score = composite_score(result, weights)
        current = self.current_path(spec.model_name)
        decision: dict[str, Any] = {
            "eval_id": result.get("eval_id"), "dataset": spec.dataset_path, "version": spec.model_version,
            "new_sha256": result["checkpoint_sha256"], "new_score": new_score, "weights": weights,
            "previous_sha256": None, "previous_score": None, "baseline": self.config.baseline, "gates": [],
            "gate_settings": gates,
        }
        previous_sha = await asyncio.to_thread(_sha_or_none, current)
        decision["previous_sha256"] = previous_sha
        if previous_sha is None:
            return {**decision, "decision": "promoted", "reason": f"first version of {spec.model_name}: no current.pt"}
        if previous_sha == result["checkpoint_sha256"]:
            return {**decision, "decision": "refused", "reason": "the candidate is already what current.pt holds"}
        if new_score is None:
            return {**decision, "decision": "refused", "reason": "the candidate has no score (every weighted metric is null)"}
        incumbent, baseline_desc = await self._baseline(spec, result, current, previous_sha, ctx)
        baseline_score = None if incumbent is None else composite_score(incumbent, weights)
        decision["previous_score"] = baseline_score
        margin = float(gates["min_delta"])
        if baseline_score is not None and not new_score > baseline_score + margin:
            return {**decision, "decision": "refused", "reason": (
                f"score {new_score:.4f} does not beat {baseline_desc} {baseline_score:.4f} + min_delta {margin:g}")}
        reason = (f"score {new_score:.4f} beats {baseline_desc} {baseline_score:.4f} + min_delta {margin:g}"
                  if baseline_score is not None else f"{baseline_desc} has no score")
        if incumbent is not None and gates_active(gates):
            failures, summary = await self._gates(incumbent, result, weights, gates, ctx)
            decision.update(gates=failures, significance=summary)
            if failures:
                return {**decision, "decision": "refused", "reason": "refused by promotion gates: " + "; ".join(
                    f"{f['gate']} ({f['subject']}): {f['reason']}" for f in failures)}
            reason += "; gates passed"
        return {**decision, "decision": "promoted", "reason": reason}

    async def _baseline(self, spec: EvalSpec, result: dict[str, Any], current: Path, previous_sha: str,
                        ctx: JobContext) -> tuple[dict[str, Any] | None, str]:
        """The result the candidate must beat, and how to name it in reasons (None: nothing to beat)."""
        if self.config.baseline == "dataset_best":
            row = await self.db.read(lambda c: results.best_score_on_dataset(
                c, spec.dataset_path, result["checkpoint_sha256"], spec.split))
            if row is None:
                return None, "the dataset's leaderboard (empty)"
            return results.result_of(row), f"the dataset's best ({row['model_name']}, eval {row['id']})"
        fp = result["dataset_fingerprint"]
        row = await self.db.read(lambda c: results.find_for_checkpoint(c, previous_sha, fp))
        if row is not None:
            return results.result_of(row), "the incumbent current.pt"
        log.info("job %s: evaluating the incumbent current.pt of %s first", ctx.job.id, spec.model_name)
        incumbent_spec = EvalSpec(
            model_path=str(current), model_name=spec.model_name, model_version=None,
            dataset_path=spec.dataset_path, imgsz=spec.imgsz, batch=spec.batch, weights=spec.weights,
            split=spec.split,
        )
        return await self.evaluations.run(incumbent_spec, ctx, ctx.job.trigger), "the incumbent current.pt"

    async def _gates(self, incumbent: dict[str, Any], candidate: dict[str, Any], weights: dict[str, float],
                     gates: dict[str, Any], ctx: JobContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Paired bootstrap of candidate (b) against incumbent (a), then the gates; (failures, summary)."""
        from evaluation.compare_stats import evaluate_gates

        if incumbent.get("dataset_fingerprint") != candidate.get("dataset_fingerprint"):
            failure = {"gate": "comparable", "subject": "dataset", "value": None, "ci_low": None, "ci_high": None,
                       "threshold": None, "reason": "the baseline was evaluated on other dataset content, so the "
                                                    "gates cannot pair their images"}
            return [failure], {}
        stats = await self.executor.run(
            "compare",
            {"evidence_a": await self.evaluations.evidence_path(incumbent["eval_id"]),
             "evidence_b": await self.evaluations.evidence_path(candidate["eval_id"]),
             "names": candidate.get("class_names"), "weights": weights,
             "n_resamples": self.config.bootstrap_resamples, "seed": self.config.bootstrap_seed},
            job_id=ctx.job.id, on_progress=lambda _: None, timeout=ctx.remaining(), cancel=ctx.cancel_event,
        )
        summary = {"accuracy_score": stats["metrics"].get("accuracy_score"), "n_resamples": stats["n_resamples"],
                   "seed": stats["seed"], "eval_id_a": incumbent["eval_id"], "eval_id_b": candidate["eval_id"]}
        return evaluate_gates(stats, gates), summary

    # -- manual promotion and rollback ---------------------------------------------------------
    async def promote_version(self, name: str, version: int, actor: str, reason: str | None) -> dict[str, Any]:
        """Make ``v<version>.pt`` current now, whatever its score (audited)."""
        source = list_versions(self.models_root / check_name(name)).get(version)
        if source is None:
            raise NotFound(f"model {name} has no v{version}.pt")
        if not source.resolve().is_relative_to(self.models_root.resolve()):
            raise PathNotAllowed(f"{source} is a link that leaves the models root")
        async with self._lock(name):
            new_sha = await asyncio.to_thread(file_sha256, source)
            previous_sha = await asyncio.to_thread(_sha_or_none, self.current_path(name))
            if previous_sha == new_sha:
                raise Conflict(f"v{version}.pt is already what current.pt of {name} holds")
            await self._swap(name, source, new_sha)
            decision = {
                "decision": "promoted", "version": version, "previous_sha256": previous_sha, "new_sha256": new_sha,
                "reason": f"manual promotion of v{version}" + (f": {reason}" if reason else ""), "gates": [],
                **await self._existing_scores(name, previous_sha, new_sha),
            }
            decision["promotion_id"] = await self._record(name, decision, actor, None)
            return decision

    async def rollback(self, name: str, actor: str, reason: str | None) -> dict[str, Any]:
        """Restore the checkpoint that was current before the last promotion (byte for byte)."""
        if not (self.models_root / check_name(name)).is_dir():
            raise NotFound(f"model not found: {name}")
        async with self._lock(name):
            ledger = await self.db.read(lambda c: promotions.promoted_history(c, name))
            stack = _promotion_stack(list(reversed(ledger)))
            current_sha = await asyncio.to_thread(_sha_or_none, self.current_path(name))
            if len(stack) < 2:
                raise Conflict(f"nothing to roll back to: {name} has no earlier promoted checkpoint")
            if current_sha != stack[-1]:
                raise Conflict(f"current.pt of {name} was changed outside the daemon; promote a version explicitly")
            target = stack[-2]
            source = self.store_dir / f"{target}.pt"
            if not source.is_file():
                raise NotFound(f"the previous checkpoint {target[:12]}... is no longer in the promotion store")
            await self._swap(name, source, target)
            decision = {
                "decision": "rollback", "previous_sha256": current_sha, "new_sha256": target,
                "reason": "rollback to the previously promoted checkpoint" + (f": {reason}" if reason else ""),
                "version": await asyncio.to_thread(self._version_of_sha, name, target), "gates": [],
                **await self._existing_scores(name, current_sha, target),
            }
            decision["promotion_id"] = await self._record(name, decision, actor, None)
            return decision

    async def _existing_scores(self, name: str, previous_sha: str | None, new_sha: str) -> dict[str, Any]:
        """The scores a manual decision records: those of evaluations that already exist, none run.

        Rule: the dataset is that of the most recent evaluation of the incoming
        checkpoint (one stored under this model preferred), or, when it has none,
        of the outgoing one; each side's score is its most recent evaluation on
        that dataset's content (same fingerprint), null when there is none.
        ``eval_id`` is the incoming side's evaluation.
        """
        def lookup(conn: Any) -> dict[str, Any]:
            anchor = results.latest_of_checkpoint(conn, new_sha, name)
            if anchor is None and previous_sha is not None:
                anchor = results.latest_of_checkpoint(conn, previous_sha, name)
            if anchor is None:
                return {"previous_score": None, "new_score": None, "eval_id": None, "dataset": None}
            fingerprint = anchor["dataset_fingerprint"]
            new = results.find_for_checkpoint(conn, new_sha, fingerprint)
            old = results.find_for_checkpoint(conn, previous_sha, fingerprint) if previous_sha else None
            return {"previous_score": old["score"] if old else None, "new_score": new["score"] if new else None,
                    "eval_id": new["id"] if new else None, "dataset": anchor["dataset"]}

        return await self.db.read(lookup)

    def _version_of_sha(self, name: str, sha: str) -> int | None:
        for n, path in list_versions(self.models_root / name).items():
            if _sha_or_none(path) == sha:
                return n
        return None

    # -- the swap and the ledger ---------------------------------------------------------------
    async def _swap(self, name: str, source: Path, sha: str) -> None:
        """Keep the outgoing and incoming checkpoints in the store, then replace current.pt atomically."""
        current = self.current_path(name)
        await asyncio.to_thread(self._swap_sync, current, source, sha)

    def _swap_sync(self, current: Path, source: Path, sha: str) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        outgoing = _sha_or_none(current)
        if outgoing is not None and not (self.store_dir / f"{outgoing}.pt").exists():
            atomic_copy(current, self.store_dir / f"{outgoing}.pt", outgoing)
        if not (self.store_dir / f"{sha}.pt").exists():
            atomic_copy(source, self.store_dir / f"{sha}.pt", sha)
        atomic_copy(source, current, sha)

    async def _record(self, name: str, decision: dict[str, Any], actor: str, job_id: str | None) -> int:
        row = {
            "model_name": name, "eval_id": decision.get("eval_id"), "timestamp": iso(self.clock()),
            "decision": decision["decision"], "actor": actor, "reason": decision["reason"],
            "dataset": decision.get("dataset"), "version": decision.get("version"),
            "previous_sha256": decision.get("previous_sha256"), "new_sha256": decision.get("new_sha256"),
            "previous_score": decision.get("previous_score"), "new_score": decision.get("new_score"),
            "details": {"job_id": job_id, "gates": decision.get("gates", []), "weights": decision.get("weights"),
                        "baseline": decision.get("baseline"), "gate_settings": decision.get("gate_settings"),
                        "significance": decision.get("significance"),
                        "export_parity": decision.get("export_parity")},
        }
        return await self.db.write(lambda c: promotions.insert(c, row))

    # -- start-up ------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Remove stray temp files; record any current.pt that the ledger does not explain."""
        if not self.models_root.is_dir():
            return
        for model_dir in sorted(p for p in self.models_root.iterdir() if p.is_dir()):
            name = model_dir.name
            try:
                current = self.current_path(name)
            except PathNotAllowed as exc:
                log.warning("not reconciling %s: %s", name, exc.detail)
                continue
            except Exception:  # noqa: BLE001 - not a model folder
                continue
            for stray in await asyncio.to_thread(remove_stray_tmp, model_dir):
                log.warning("removed stray temp file %s", stray)
            current_sha = await asyncio.to_thread(_sha_or_none, current)
            if current_sha is None:
                continue
            ledger = await self.db.read(lambda c, n=name: promotions.promoted_history(c, n))
            stack = _promotion_stack(list(reversed(ledger)))
            if stack and stack[-1] != current_sha:
                await asyncio.to_thread(self._keep, model_dir / CURRENT, current_sha)
                decision = {
                    "decision": "promoted", "previous_sha256": stack[-1], "new_sha256": current_sha,
                    "reason": "current.pt changed outside an audited promotion (found at start-up)",
                    "version": await asyncio.to_thread(self._version_of_sha, name, current_sha),
                }
                await self._record(name, decision, "recovery", None)
                log.warning("current.pt of %s is not what the ledger says; recorded", name)

    def _keep(self, path: Path, sha: str) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if not (self.store_dir / f"{sha}.pt").exists():
            atomic_copy(path, self.store_dir / f"{sha}.pt", sha)

    async def history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self.db.read(lambda c: promotions.history(c, name, limit))


GATE_KEYS = ("require_significant", "min_delta", "max_class_regression", "min_class_support",
             "max_size_recall_regression")


def gates_active(gates: dict[str, Any]) -> bool:
    return bool(gates["require_significant"]) or gates["max_class_regression"] is not None \
        or gates["max_size_recall_regression"] is not None


def validate_gates(raw: Any) -> dict[str, Any] | None:
    """A request's gate overrides, checked; InvalidRequest naming the bad key or value."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("gates must be an object, e.g. {\"require_significant\": true}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in GATE_KEYS:
            raise InvalidRequest(f"unknown gate {key!r}; allowed: {', '.join(GATE_KEYS)}")
        if key == "require_significant":
            if not isinstance(value, bool):
                raise InvalidRequest("gates.require_significant must be true or false")
        elif key == "min_class_support":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequest("gates.min_class_support must be a whole number >= 0")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                    or not math.isfinite(value) or value < 0):
            raise InvalidRequest(f"gates.{key} must be a number >= 0" + ("" if key == "min_delta" else " or null"))
        out[key] = value
    return out


def _promotion_stack(ledger_oldest_first: list[dict[str, Any]]) -> list[str]:
    """The sequence of checkpoints current.pt has held, oldest first, with rollbacks popped."""
    stack: list[str] = []
    for row in ledger_oldest_first:
        if row["decision"] == "promoted":
            if not stack and row["previous_sha256"]:
                stack.append(row["previous_sha256"])
            if not stack or stack[-1] != row["new_sha256"]:
                stack.append(row["new_sha256"])
        elif row["decision"] == "rollback" and len(stack) >= 2:
            stack.pop()
    return stack
