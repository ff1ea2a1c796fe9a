"""What each job kind does, step by step. The queue calls ``JobRunner.__call__`` per job.

- ``eval``: one evaluation (cached when possible); with ``auto_promote``, a
  promotion decision on the result.
- ``compare``: both evaluations (cache reused), the spec's comparison, and
  paired-bootstrap statistics computed by a worker from both evidence files.
- ``train``: training in a worker, the new version written, optional
  evaluation and promotion (see ``daemon.train.trainer``).
"""

from __future__ import annotations

from typing import Any

from daemon.jobs.evaluations import Evaluations
from daemon.jobs.queue import JobContext
from daemon.jobs.workers import Executor
from evaluation.comparison import compare_errors, compare_results
from evaluation.stats.gates import gain_basis
from vocab.contract.params import CompareJobParams, EvalJobParams
from vocab.errors import InvalidRequest, VisionEvalError
from vocab.scoring import resolve_weights


class JobRunner:
    """Dispatches a job to its kind's steps."""

    def __init__(self, evaluations: Evaluations, executor: Executor, promoter: Any = None, trainer: Any = None,
                 analyses: Any = None):
        self.evaluations = evaluations
        self.analyses = analyses
        self.executor = executor
        self.promoter = promoter
        self.trainer = trainer

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        kind = ctx.job.kind
        if kind == "eval":
            return await self.eval_job(ctx)
        if kind == "compare":
            return await self.compare_job(ctx)
        if kind == "train" and self.trainer is not None:
            return await self.trainer.run(ctx)
        raise InvalidRequest(f"unsupported job kind {kind!r}")

    async def eval_job(self, ctx: JobContext) -> dict[str, Any]:
        params = EvalJobParams.model_validate(ctx.job.params)
        spec = params.spec()
        if params.auto_promote and self.promoter is not None:
            result = await self.evaluations.run(spec, ctx.phase(0.0, 0.9), ctx.job.trigger)
            result["promotion"] = await self.promoter.consider(spec, result, ctx.phase(0.9, 1.0),
                                                               actor=ctx.job.trigger, gates=params.gates)
            return result
        return await self.evaluations.run(spec, ctx, ctx.job.trigger)

    async def compare_job(self, ctx: JobContext) -> dict[str, Any]:
        params = CompareJobParams.model_validate(ctx.job.params)
        a = await self.evaluations.run(params.a, ctx.phase(0.0, 0.45), "compare")
        ctx.check_cancelled()
        b = await self.evaluations.run(params.b, ctx.phase(0.45, 0.9), "compare")
        out = compare_results(a, b, params.model_a, params.model_b)
        out["eval_id_a"], out["eval_id_b"] = a.get("eval_id"), b.get("eval_id")
        out["dataset"] = params.a.dataset_path
        out["errors"] = compare_errors(await self._error_breakdown(a), await self._error_breakdown(b))
        if params.bootstrap_resamples > 0:
            ctx.check_cancelled()
            out["statistics"] = await self.executor.run(
                "compare",
                {
                    "evidence_a": await self.evaluations.evidence_path(a["eval_id"]),
                    "evidence_b": await self.evaluations.evidence_path(b["eval_id"]),
                    "names": a.get("class_names"),
                    "weights": resolve_weights(params.weights, params.a.task),
                    "n_resamples": params.bootstrap_resamples,
                    "seed": params.bootstrap_seed,
                },
                job_id=ctx.job.id, on_progress=ctx.phase(0.9, 1.0).progress, timeout=ctx.remaining(),
                cancel=ctx.cancel_event,
            )
            stats = out["statistics"]
            stats["difference"] = "a - b"
            stats["speed"] = ("inference_ms is resampled by batches (warm-up batch left out) in the same bootstrap "
                              "as the images; score combines both, accuracy_score is the score without speed")
            stats["gain_basis"] = gain_basis(stats)
            out["winner_significant"] = bool((stats["metrics"].get(stats["gain_basis"]) or {}).get("significant"))
        await self.evaluations.record_comparison(ctx.job.id, out)
        return out

    async def _error_breakdown(self, result: dict[str, Any]) -> dict[str, Any] | None:
        """An evaluation's error counts (overall, per class, per size): its artifact (recomputed by a worker
        for an older evaluation), else the overall counts of its result, else None."""
        if self.analyses is not None and result.get("eval_id") is not None:
            try:
                errors = await self.analyses.errors(int(result["eval_id"]), full=False)
                return {k: errors[k] for k in ("overall", "per_class", "per_size") if k in errors}
            except VisionEvalError:
                pass
        return {"overall": dict(result["error_counts"])} if result.get("error_counts") else None
