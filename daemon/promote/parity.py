"""The export-parity gate of a promotion: a candidate ``v<n>.pt`` whose ``v<n>.onnx`` does not score
what it scores is refused.

``Promoter.consider`` calls ``ExportParity.apply`` on a decision that would
promote. With ``[promotion] export_parity = "auto"`` (the default) the export
beside the candidate is checked when there is one; ``"required"`` also refuses
a candidate without one; ``"off"`` never checks. The check evaluates the
export on the candidate's dataset, imgsz and batch (through the cache like
any evaluation), runs the paired statistics of the two evaluations' evidence
in a worker and applies ``evaluation.export_parity.parity_verdict``. Like is
compared with like: a dynamic export against the candidate's own evaluation
(rectangular batches at its imgsz); a static export, which pads every image
to its fixed square, against a reference evaluation of the ``.pt`` padded the
same way at the export's size (``rect`` False: kept off the leaderboard and
out of incumbent lookups). The parity record (numbers, padding and verdict)
goes into the decision, hence into the job result and the ledger's details.

An export may land after its ``.pt`` (the watcher picks up a settled
``v<n>.pt`` while the exporter is still writing ``v<n>.onnx``): when the
model's folder already holds exports of other versions (so one is expected)
and the candidate is younger than ``[promotion] export_wait_s``, the check
waits for the export to appear; any export is read only once its size, mtime
and inode have stopped changing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from daemon.jobs.evaluations import EvalSpec, Evaluations
from daemon.jobs.queue import JobContext
from daemon.jobs.workers import Executor
from daemon.promote.decision import Decision
from evaluation.export_meta import read_export
from evaluation.export_parity import parity_verdict
from evaluation.model_resolution import EXPORT_VERSION_RE, export_beside, list_versions
from vocab.config import PromotionConfig
from vocab.errors import CheckpointError
from vocab.files import identity_of

log = logging.getLogger(__name__)


class ExportParity:
    """Checks a candidate's ONNX export against it (see module contract)."""

    def __init__(self, evaluations: Evaluations, executor: Executor, config: PromotionConfig) -> None:
        self.evaluations = evaluations
        self.executor = executor
        self.config = config

    async def apply(self, spec: EvalSpec, result: dict[str, Any], ctx: JobContext,
                    decision: Decision, trigger: str) -> None:
        """Add the ``export_parity`` record to a promotion; it becomes a refusal on a failed check.
        The export's evaluation is recorded with ``trigger`` (that of the candidate's)."""
        if not decision.promoted:
            return
        parity = await self.check(spec, result, ctx, trigger)
        if parity is None:
            return
        decision.export_parity = parity
        if parity["verdict"] == "fail":
            decision.refuse("refused by the export-parity gate: " + "; ".join(parity["failures"]))
            decision.cause = "export"  # a corrected v<n>.onnx brings another look (daemon.watch.sources)
        elif parity["verdict"] == "pass":
            metric = parity["metric"]
            decision.reason += f"; export parity passed (Δ {metric} {parity[f'delta_{metric}']:+.4f})"

    async def check(self, spec: EvalSpec, result: dict[str, Any], ctx: JobContext,
                    trigger: str) -> dict[str, Any] | None:
        """The parity record of a candidate: ``verdict`` pass, fail or skipped; None when the gate is off."""
        mode = self.config.export_parity
        if mode == "off":
            return None
        onnx = export_beside(Path(spec.model_path))
        base: dict[str, Any] = {"mode": mode, "export": str(onnx)}
        expected = await asyncio.to_thread(_exports_expected, onnx)
        if not await wait_for_export(Path(spec.model_path), onnx, self.config.export_wait_s if expected else 0.0):
            return self._not_checked(base, f"no ONNX export {onnx.name} beside {Path(spec.model_path).name}")
        try:
            info = await asyncio.to_thread(read_export, onnx, spec.task)
        except CheckpointError as exc:
            return {**base, "verdict": "fail", "failures": [exc.detail]}
        base["export_metadata"] = info.as_dict()
        log.info("job %s: checking export parity of %s", ctx.job.id, onnx)
        if info.dynamic:
            base["padding"] = "rectangular batches, as the .pt is evaluated"
            reference = result
            export_eval = await self.evaluations.run(spec.model_copy(update={"model_path": str(onnx)}), ctx, trigger)
        else:
            size = max(info.imgsz)
            base["padding"] = (f"square: a static export fixed at {info.imgsz[0]}x{info.imgsz[1]}, compared with "
                               f"the .pt padded the same way at imgsz {size}")
            reference = await self.evaluations.run(spec.model_copy(update={"imgsz": size, "rect": False}), ctx,
                                                   trigger)
            export_eval = await self.evaluations.run(
                spec.model_copy(update={"model_path": str(onnx), "imgsz": size, "batch": info.batch}), ctx, trigger)
        stats = await self.executor.run(
            "compare",
            {"evidence_a": await self.evaluations.evidence_path(export_eval["eval_id"]),
             "evidence_b": await self.evaluations.evidence_path(reference["eval_id"]),
             "names": result.get("class_names"), "weights": None,
             "n_resamples": max(1, self.config.bootstrap_resamples), "seed": self.config.bootstrap_seed},
            job_id=ctx.job.id, on_progress=lambda _: None, timeout=ctx.remaining(), cancel=ctx.cancel_event,
        )
        verdict = parity_verdict(stats, max_delta=self.config.max_export_delta,
                                 max_class_delta=self.config.max_export_class_delta,
                                 min_class_support=self.config.min_class_support, task=spec.task)
        return {**base, **verdict, "eval_id_pt": reference["eval_id"], "eval_id_onnx": export_eval["eval_id"],
                "onnx_sha256": export_eval["checkpoint_sha256"]}

    def _not_checked(self, base: dict[str, Any], why: str) -> dict[str, Any]:
        """No export: a failure when parity is required, else skipped with the reason."""
        if self.config.export_parity == "required":
            return {**base, "verdict": "fail", "failures": [f"export parity is required but {why}"]}
        return {**base, "verdict": "skipped", "failures": [], "reason": why}


def _exports_expected(export: Path) -> bool:
    """Whether the model folder holds an export of another version: its exporter writes them."""
    return any(p != export for p in list_versions(export.parent, EXPORT_VERSION_RE).values())


async def wait_for_export(checkpoint: Path, export: Path, wait_s: float, poll_s: float = 1.0) -> bool:
    """True once ``export`` exists and is unchanged over one poll; False when it does not exist and
    ``checkpoint`` is older than ``wait_s`` seconds (no export is coming)."""
    previous = None
    while True:
        ident = await asyncio.to_thread(identity_of, export)
        if ident is not None and ident == previous:
            return True
        if ident is None:
            try:
                age = time.time() - (await asyncio.to_thread(os.stat, checkpoint)).st_mtime
            except OSError:
                return False
            if age >= wait_s:
                return False
        previous = ident
        await asyncio.sleep(poll_s)
