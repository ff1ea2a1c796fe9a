"""What is stored with a job (its ``params`` JSON) and what a worker is handed, one model per job kind.

A job's parameters are one of these models, dumped to JSON when the job is
queued (``Params.stored``) and read back with ``model_validate`` when it
runs. Their JSON keys are the ones earlier daemons stored, so a job queued
by an older daemon still loads: a key it did not store yet takes its
default, a key it stored that is gone now is ignored.

``EvalSpec`` travels unchanged from the submission to the worker and into
``evaluation.evaluate``; a worker's ``EvalTask`` adds only what the daemon
adds: the device, where to write, and what the files must hash to.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from vocab.tasks import DEFAULT_TASK


class Params(BaseModel):
    """Stored job parameters (see module contract): immutable, unknown stored keys ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def stored(self) -> dict[str, Any]:
        """The JSON object stored as the job's ``params``."""
        return self.model_dump(mode="json")


class EvalSpec(Params):
    """One evaluation to run: a resolved checkpoint on a checked dataset, with the settings asked for."""

    model_path: str
    model_name: str
    model_version: int | None = None
    task: str = DEFAULT_TASK  # the checkpoint's (read at submit); jobs stored before tasks are detection
    dataset_path: str
    imgsz: int
    batch: int
    weights: dict[str, float] | None = None  # None: the default weights
    allow_class_mismatch: bool = False
    split: str = "val"
    rect: bool = True  # False: the square-padded reference of a checkpoint for a static export's parity


class EvalJobParams(EvalSpec):
    """An ``eval`` job: its spec, what the client named, and the promotion decision it may end with."""

    model: str | None = None  # the model as the client gave it (a name or a path)
    auto_promote: bool = False
    gates: dict[str, Any] | None = None  # the request's gate overrides (None: the configured gates)

    def spec(self) -> EvalSpec:
        """The evaluation alone."""
        return EvalSpec.model_validate(self.model_dump(include=set(EvalSpec.model_fields)))


class CompareJobParams(Params):
    """A ``compare`` job: the two evaluations (a, b) and the paired bootstrap between them."""

    model_a: str
    model_b: str
    dataset_path: str
    a: EvalSpec
    b: EvalSpec
    split: str = "val"
    weights: dict[str, float] | None = None
    bootstrap_resamples: int = 0
    bootstrap_seed: int = 0


class TrainJobParams(Params):
    """A ``train`` job: what to train from and on, how, and what to do with the new version."""

    model: str
    dataset_path: str
    task: str
    split: str = "val"
    epochs: int
    batch: int
    imgsz: int
    learning_rate: float
    patience: int
    base: str  # a checkpoint path or a bundled architecture
    device: str
    auto_eval: bool = False
    auto_promote: bool = False
    eval_weights: dict[str, float] | None = None
    gates: dict[str, Any] | None = None


class EvalTask(Params):
    """What a worker gets for an ``eval`` task: the spec unchanged, and what the daemon adds to it.

    ``work_dir``, ``predictions_path`` and ``evidence_path`` are where to write (a remote worker writes
    node-local copies, ``daemon.jobs.ray_actor``); ``checkpoint_sha256`` and ``dataset_fingerprint`` are
    what the daemon read, which a remote worker checks its own files against.
    """

    spec: EvalSpec
    device: str
    work_dir: str
    predictions_path: str
    evidence_path: str
    checkpoint_sha256: str | None = None
    dataset_fingerprint: str | None = None
    cache_root: str | None = None  # where a COCO JSON dataset is converted (the daemon's, shared by its jobs)
