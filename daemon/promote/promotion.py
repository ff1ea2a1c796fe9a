"""Promotion of ``<name>/current.pt``: decisions, the atomic swap, the ledger, rollback.

Rules (docs/user-guide.md, "Promotion"): the candidate must beat the incumbent -- the evaluation of
what ``current.pt`` holds now with the candidate's effective settings (same
dataset content, image size, batch and device kind), rescored with the
candidate's weights (evaluated first when it has none) -- by more than
``promotion.min_delta``; with ``baseline = "dataset_best"`` it must beat the
best score among evaluations with the same settings instead.
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
import functools
import logging
from pathlib import Path
from typing import Any

from daemon.clock import Clock, iso, utcnow
from daemon.jobs.evaluations import EvalSpec, Evaluations
from daemon.jobs.queue import JobContext
from daemon.jobs.workers import Executor
from daemon.promote.decision import Decision, Gain, identical_reason, judge
from daemon.promote.manual import check_manual
from daemon.promote.parity import ExportParity
from daemon.tracking.tracker import Tracker
from evaluation.checkpoint_meta import read_checkpoint_meta
from evaluation.evidence import load_evidence, same_predictions
from evaluation.file_cache import file_sha256
from evaluation.model_resolution import CURRENT, list_versions
from evaluation.stats.gates import evaluate_gates, from_config, gates_active
from store import promotions, results
from store.database import Database
from vocab.config import PromotionConfig
from vocab.errors import CheckpointError, Conflict, NotFound, PathNotAllowed
from vocab.files import ContentChanged, atomic_copy, check_model_name, is_under, remove_stray_tmp
from vocab.scoring import composite_score, resolve_weights

log = logging.getLogger(__name__)


def _sha_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


class Promoter:
    """Decides and performs promotions (see module contract)."""

    def __init__(self, db: Database, evaluations: Evaluations, executor: Executor, models_root: Path,
                 store_dir: Path, config: PromotionConfig, clock: Clock = utcnow, tracker: Tracker | None = None) -> None:
        """``tracker``: MLflow, told of every decision in the ledger's own write (None: off)."""
        self.db = db
        self.tracker = tracker
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
        path = self.models_root / check_model_name(name) / CURRENT
        if not is_under(path, self.models_root):
            raise PathNotAllowed(f"{path} is a link that leaves the models root")
        return path

    # -- automatic decisions -------------------------------------------------------------------
    async def consider(self, spec: EvalSpec, result: dict[str, Any], ctx: JobContext, actor: str,
                       gates: dict[str, Any] | None = None) -> dict[str, Any]:
        """Promote ``spec``'s checkpoint if it beats the incumbent and passes the gates; record the
        decision either way (``Decision.public``). ``gates`` overrides the configured gates for this decision."""
        async with self._lock(spec.model_name):
            decision = await self._decide(spec, result, ctx, self.gate_settings(gates))
            await self.export_parity.apply(spec, result, ctx, decision, actor)
            if decision.promoted:
                try:
                    await self._swap(spec.model_name, Path(spec.model_path), result["checkpoint_sha256"])
                except ContentChanged as exc:
                    decision.refuse(f"not promoted: {exc}")
            await self._record(spec.model_name, decision, actor, ctx.job.id)
            log.info("promotion of %s v%s: %s (%s)", spec.model_name, spec.model_version,
                     decision.decision, decision.reason)
            return decision.public()

    def gate_settings(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The promotion gates in force: the config's, overridden per request (validated at submit)."""
        gates = from_config(self.config)
        gates.update(overrides or {})
        return gates

    async def _decide(self, spec: EvalSpec, result: dict[str, Any], ctx: JobContext,
                      gates: dict[str, Any]) -> Decision:
        weights = resolve_weights(spec.weights, spec.task)
        new_score = composite_score(result, weights)
        current = self.current_path(spec.model_name)
        previous_sha = await asyncio.to_thread(_sha_or_none, current)
        d = Decision(
            decision="refused", reason="", eval_id=result.get("eval_id"), dataset=spec.dataset_path,
            version=spec.model_version, new_sha256=result["checkpoint_sha256"], new_score=new_score,
            previous_sha256=previous_sha, weights=weights, baseline=self.config.baseline, gate_settings=gates,
        )
        if previous_sha is None:
            d.promote(f"first version of {spec.model_name}: no current.pt")
            return d
        if previous_sha == result["checkpoint_sha256"]:
            d.refuse("the candidate is already what current.pt holds")
            return d
        held = await self._held_task(current)
        if isinstance(held, CheckpointError):
            d.promote(f"current.pt cannot be read ({held.detail}): the candidate replaces it")
            return d
        if held != spec.task:
            d.refuse(f"the candidate is a {spec.task} model but current.pt holds a {held} model: a model folder "
                     "serves one task")
            return d
        if new_score is None:
            d.refuse("the candidate has no score (every weighted metric is null)")
            return d
        incumbent, baseline_desc = await self._baseline(spec, result, current, previous_sha, ctx)
        baseline_score = d.previous_score = None if incumbent is None else composite_score(incumbent, weights)
        d.baseline_eval_id = None if incumbent is None else incumbent.get("eval_id")
        if incumbent is None or baseline_score is None:
            d.promote(f"{baseline_desc} has no score")
            return d
        stats, d.significance = await self._statistics(incumbent, result, weights, ctx)
        gain = Gain.of(new_score, baseline_score, stats, (result.get("inference_ms"), incumbent.get("inference_ms")))
        d.gain = gain.public()
        if await self._same_predictions(incumbent, result):
            d.refuse(identical_reason(gain, baseline_desc))
            return d
        d.gates = self._gate_failures(stats, gates) if gates_active(gates) else []
        d.decision, d.reason = judge(gain, new_score, baseline_score, baseline_desc, gates, d.gates)
        d.cause = "dataset" if not d.promoted else None  # judged on this data: other data may judge otherwise
        return d

    @staticmethod
    async def _held_task(current: Path) -> str | CheckpointError:
        """The task of the checkpoint current.pt holds, or why it cannot be read."""
        try:
            return (await asyncio.to_thread(read_checkpoint_meta, current)).task
        except CheckpointError as exc:
            return exc

    async def _baseline(self, spec: EvalSpec, result: dict[str, Any], current: Path, previous_sha: str,
                        ctx: JobContext) -> tuple[dict[str, Any] | None, str]:
        """The result the candidate must beat, and how to name it in reasons (None: nothing to beat).

        Like with like: only evaluations with the candidate's effective settings (as stored in its
        result: dataset content, image size, batch, device kind) are baselines; the incumbent is
        evaluated first with those settings when it has no such evaluation.
        """
        settings = results.like_settings(result)
        if self.config.baseline == "dataset_best":
            row = await self.db.read(lambda c: results.best_score_like(c, settings, result["checkpoint_sha256"]))
            if row is None:
                return None, "the dataset's leaderboard (empty at these settings)"
            return results.result_of(row), f"the dataset's best ({row['model_name']}, eval {row['id']})"
        row = await self.db.read(lambda c: results.find_like(c, previous_sha, settings))
        if row is not None:
            return results.result_of(row), f"the incumbent current.pt (eval {row['id']})"
        log.info("job %s: evaluating the incumbent current.pt of %s first", ctx.job.id, spec.model_name)
        incumbent_spec = EvalSpec(
            model_path=str(current), model_name=spec.model_name, model_version=None,
            dataset_path=spec.dataset_path, imgsz=settings[1], batch=settings[2], weights=spec.weights,
            split=spec.split, task=spec.task,
        )
        incumbent = await self.evaluations.run(incumbent_spec, ctx, ctx.job.trigger)
        return incumbent, f"the incumbent current.pt (eval {incumbent['eval_id']})"

    async def _same_predictions(self, incumbent: dict[str, Any], candidate: dict[str, Any]) -> bool:
        """Whether both evaluations hold the same predictions on every image (their evidence, timings aside)."""
        if incumbent.get("dataset_fingerprint") != candidate.get("dataset_fingerprint"):
            return False
        paths = [await self.evaluations.evidence_path(r["eval_id"]) for r in (incumbent, candidate)]
        return await asyncio.to_thread(lambda: same_predictions(*(load_evidence(Path(p)) for p in paths)))

    async def _statistics(self, incumbent: dict[str, Any], candidate: dict[str, Any], weights: dict[str, float],
                          ctx: JobContext) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Paired bootstrap of the candidate (a) against the incumbent (b), so every ``diff`` is the candidate's
        gain; (None, {}) when they cannot be paired
        (other dataset content) or ``bootstrap_resamples`` is 0."""
        if incumbent.get("dataset_fingerprint") != candidate.get("dataset_fingerprint") \
                or self.config.bootstrap_resamples < 1:
            return None, {}
        stats = await self.executor.run(
            "compare",
            {"evidence_a": await self.evaluations.evidence_path(candidate["eval_id"]),
             "evidence_b": await self.evaluations.evidence_path(incumbent["eval_id"]),
             "names": candidate.get("class_names"), "weights": weights,
             "n_resamples": self.config.bootstrap_resamples, "seed": self.config.bootstrap_seed},
            job_id=ctx.job.id, on_progress=lambda _: None, timeout=ctx.remaining(), cancel=ctx.cancel_event,
        )
        metrics = stats["metrics"]
        summary = {"accuracy_score": metrics.get("accuracy_score"), "score": metrics.get("score"),
                   "inference_ms": metrics.get("inference_ms"), "n_resamples": stats["n_resamples"],
                   "seed": stats["seed"], "difference": "candidate - baseline",
                   "eval_id_candidate": candidate["eval_id"], "eval_id_baseline": incumbent["eval_id"]}
        return stats, summary

    @staticmethod
    def _gate_failures(stats: dict[str, Any] | None, gates: dict[str, Any]) -> list[dict[str, Any]]:
        """The gates ``stats`` fails; without statistics every active gate fails as not comparable."""
        if stats is None:
            return [{"gate": "comparable", "subject": "dataset", "value": None, "ci_low": None, "ci_high": None,
                     "threshold": None, "reason": "no paired bootstrap: the baseline was evaluated on other dataset "
                                                  "content, or [promotion] bootstrap_resamples is 0"}]
        return evaluate_gates(stats, gates)

    # -- manual promotion and rollback ---------------------------------------------------------
    async def promote_version(self, name: str, version: int, actor: str, reason: str | None,
                              force: bool = False) -> dict[str, Any]:
        """Make ``v<version>.pt`` current now, whatever its score, unless ``daemon.promote.manual`` refuses it
        (409; ``force`` with a ``reason`` overrides "not evaluated yet" and "refused by the gates"). Audited."""
        source = list_versions(self.models_root / check_model_name(name)).get(version)
        if source is None:
            raise NotFound(f"model {name} has no v{version}.pt")
        if not is_under(source, self.models_root):
            raise PathNotAllowed(f"{source} is a link that leaves the models root")
        async with self._lock(name):
            new_sha = await asyncio.to_thread(file_sha256, source)
            current = self.current_path(name)
            previous_sha = await asyncio.to_thread(_sha_or_none, current)
            if previous_sha == new_sha:
                raise Conflict(f"v{version}.pt is already what current.pt of {name} holds")
            forced = await check_manual(self.db, name, source, new_sha, current if previous_sha else None, force,
                                        reason)
            await self._swap(name, source, new_sha)
            decision = Decision(
                decision="promoted", version=version, previous_sha256=previous_sha, new_sha256=new_sha,
                reason=f"manual promotion of v{version}" + (f" (forced: {forced})" if forced else "")
                + (f": {reason}" if reason else ""), forced=forced,
                **await self._existing_scores(name, previous_sha, new_sha),
            )
            await self._record(name, decision, actor, None)
            return decision.public()

    async def rollback(self, name: str, actor: str, reason: str | None) -> dict[str, Any]:
        """Restore the checkpoint that was current before the last promotion (byte for byte)."""
        if not (self.models_root / check_model_name(name)).is_dir():
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
            decision = Decision(
                decision="rollback", previous_sha256=current_sha, new_sha256=target,
                reason="rollback to the previously promoted checkpoint" + (f": {reason}" if reason else ""),
                version=await asyncio.to_thread(self._version_of_sha, name, target),
                **await self._existing_scores(name, current_sha, target),
            )
            await self._record(name, decision, actor, None)
            return decision.public()

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

    async def _record(self, name: str, d: Decision, actor: str, job_id: str | None) -> None:
        """Write ``d`` as a ledger row and set its ``promotion_id``."""
        now = iso(self.clock())
        row = {
            "model_name": name, "eval_id": d.eval_id, "timestamp": now, "decision": d.decision,
            "actor": actor, "reason": d.reason, "dataset": d.dataset, "version": d.version,
            "previous_sha256": d.previous_sha256, "new_sha256": d.new_sha256, "previous_score": d.previous_score,
            "new_score": d.new_score, "details": d.details(job_id),
        }

        def write(conn: Any) -> int:
            promotion_id = promotions.insert(conn, row)
            if self.tracker is not None:
                self.tracker.record_decision(conn, name, {**d.public(), "promotion_id": promotion_id}, job_id, now)
            return promotion_id

        d.promotion_id = await self.db.write(write)
        if self.tracker is not None:
            self.tracker.wake()

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
            ledger = await self.db.read(functools.partial(promotions.promoted_history, model_name=name))
            stack = _promotion_stack(list(reversed(ledger)))
            if stack and stack[-1] != current_sha:
                await asyncio.to_thread(self._keep, model_dir / CURRENT, current_sha)
                decision = Decision(
                    decision="promoted", previous_sha256=stack[-1], new_sha256=current_sha,
                    reason="current.pt changed outside an audited promotion (found at start-up)",
                    version=await asyncio.to_thread(self._version_of_sha, name, current_sha),
                )
                await self._record(name, decision, "recovery", None)
                log.warning("current.pt of %s is not what the ledger says; recorded", name)

    def _keep(self, path: Path, sha: str) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if not (self.store_dir / f"{sha}.pt").exists():
            atomic_copy(path, self.store_dir / f"{sha}.pt", sha)

    async def history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self.db.read(lambda c: promotions.history(c, name, limit))


def _promotion_stack(ledger_oldest_first: list[dict[str, Any]]) -> list[str]:
    """The sequence of checkpoints current.pt has held, oldest first, with rollbacks popped.

    A row that names no checkpoint (imported from LlamaFarm's ledger) says nothing about it.
    """
    stack: list[str] = []
    for row in ledger_oldest_first:
        if row["decision"] == "promoted" and row["new_sha256"]:
            if not stack and row["previous_sha256"]:
                stack.append(row["previous_sha256"])
            if not stack or stack[-1] != row["new_sha256"]:
                stack.append(row["new_sha256"])
        elif row["decision"] == "rollback" and len(stack) >= 2:
            stack.pop()
    return stack
