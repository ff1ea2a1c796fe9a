"""The daemon's other answers: errors, jobs, evaluation summaries, models, the promotion ledger, health."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from vocab.contract.fields import Answer, OneOf
from vocab.contract.job_results import DECISIONS, CompareResult, EvalResult, TrainResult
from vocab.terms import JOB_KINDS, JOB_STATUSES

Num = float | None
TRIGGERS = ("api", "watcher", "train", "compare")
CHECKPOINT_STATES = ("queued", "evaluated", "retry", "failed", "cancelled")


class Error(Answer):
    """Every error answer: what is wrong and, where possible, how to fix it."""

    model_config = ConfigDict(extra="forbid")
    detail: str


class Job(Answer):
    """An asynchronous job, polled by id. ``result`` depends on the kind: an evaluation result (eval), the
    comparison (compare) or the training outcome (train)."""

    job_id: str
    kind: Annotated[str, OneOf(JOB_KINDS)]
    status: Annotated[str, OneOf(JOB_STATUSES)]
    created_at: str
    started_at: str | None
    completed_at: str | None
    progress: float = Field(ge=0, le=1)
    request: dict[str, Any] | None = Field(None, description="What the job is about: model(s), dataset, imgsz, ...")
    trigger: Annotated[str, OneOf(TRIGGERS)] | None = None
    result: EvalResult | CompareResult | TrainResult | None = Field(description="Null until the job completes.")
    error: str | None
    # Train jobs only (LlamaFarm's runtime and designer read these), updated every epoch:
    current_epoch: int | None = Field(None, ge=0, description="Train jobs: epochs finished.")
    epoch: int | None = Field(None, ge=0, description="Train jobs: the same as current_epoch.")
    total_epochs: int | None = Field(None, ge=1, description="Train jobs: epochs asked for.")
    loss: Num = Field(None, description="Train jobs: the latest epoch's mean total training loss (the sum of its "
                                        "components); null before the first epoch.")
    metrics: dict[str, Num] | None = Field(None, description="Train jobs: the latest epoch's loss components and "
                                                             "validation metrics, under ultralytics' names.")


class JobList(Answer):
    jobs: list[Job]
    total: int = Field(ge=0)


class EvalSummary(Answer):
    """The headline numbers of one stored evaluation."""

    model_name: str
    score: Num
    mAP50: Num = None
    mAP50_95: Num = None
    precision: Num = None
    recall: Num = None
    f1: Num = None
    inference_ms: Num = None
    small_object_recall: Num = None
    medium_object_recall: Num = None
    large_object_recall: Num = None
    dataset: str | None = None
    timestamp: str | None = None
    weights: dict[str, float] | None = Field(None, description="The weights that scored this row (the ranking's).")
    dataset_fingerprint: str | None = None
    current_content: bool | None = None


class HistoryEntry(EvalSummary):
    """One evaluation of a model, with its full result, newest first."""

    eval_id: int
    job_id: str | None = None
    trigger: str | None = None
    per_class: dict[str, Num] | None = None


class ModelSummary(Answer):
    """One model, in the shape of LlamaFarm's runtime (name, versions, has_current, size_mb) plus its version
    numbers and latest evaluation."""

    name: str
    versions: int = Field(ge=0, description="How many v<n>.pt files it has.")
    has_current: bool
    size_mb: float = Field(ge=0, description="All files in its folder, MiB.")
    version_numbers: list[Annotated[int, Field(ge=1)]]
    latest_evaluation: EvalSummary | None


class ModelList(Answer):
    models: list[ModelSummary]
    total: int = Field(ge=0)


VERSION_STATUSES = ("current", "waiting", "skipped", "queued", "retry", "failed", "cancelled", "promoted", "refused",
                    "rollback", "evaluated", "not evaluated")


class ModelVersion(Answer):
    """One v<n>.pt with its status and why (daemon.app.version_status)."""

    version: int
    path: str
    sha256: str | None
    size_mb: Num = None
    onnx: str | None = None
    error: str | None = None
    status: Annotated[str, OneOf(VERSION_STATUSES)] | None = None
    since: str | None = Field(None, description="When the status began (None: not known).")
    reason: str | None = Field(None, description="Why it has this status, whole (a decision's reason, an error, "
                                                 "a skip).")
    same_bytes_as: int | None = Field(None, description="An earlier version with the same bytes, whose decision "
                                                        "it shares (the watcher never evaluates bytes twice).")


class CurrentCheckpoint(Answer):
    """What current.pt holds; sha256 is null (with an error) when it is a link that leaves the models root."""

    sha256: str | None
    version: int | None = None
    error: str | None = None


class SkippedFile(Answer):
    path: str
    sha256: str | None = None
    reason: str
    created_at: str | None = None


class CheckpointState(Answer):
    """The watcher's state of one checkpoint it queued."""

    path: str
    sha256: str
    state: Annotated[str, OneOf(CHECKPOINT_STATES)]
    last_error: str | None = None
    attempts: int
    next_retry_at: str | None = None
    job_id: str | None = None
    updated_at: str | None = None
    cause: str | None = Field(None, description="What a failure or refusal depends on (dataset, export): a change "
                                                "of it brings another look.")


class WaitingCheckpoint(Answer):
    """A checkpoint waiting longer than three settle periods."""

    path: str
    waiting_s: float
    reason: str


class PromotionRecord(Answer):
    """One row of the promotions audit trail."""

    id: int
    model_name: str
    eval_id: int | None = None
    timestamp: str
    decision: Annotated[str, OneOf(DECISIONS)]
    actor: str
    reason: str
    dataset: str | None = None
    version: int | None = None
    previous_sha256: str | None = None
    new_sha256: str | None = None
    previous_score: Num = None
    new_score: Num = None
    details: dict[str, Any] | None = None


class ModelDetail(Answer):
    """One model: versions, what current.pt holds, evaluations, skipped files, decisions."""

    name: str
    path: str
    versions: list[ModelVersion]
    current: CurrentCheckpoint | None
    evaluations: list[EvalSummary]
    skipped: list[SkippedFile]
    checkpoints: list[CheckpointState] = []
    waiting: list[WaitingCheckpoint] = []
    promotions: list[PromotionRecord]


class Health(Answer):
    """Whether the daemon can do its work; the parts that are down say why."""

    ok: bool
    database: Annotated[str, OneOf(("ok", "down"))]
    workers: Annotated[str, OneOf(("starting", "ready", "restarting"))]
    watcher: Annotated[str, OneOf(("off", "ok", "down"))]
    worker_info: dict[str, Any] | None = None
    reason: str | None = Field(None, description="When not ok: why, in words (every cause, joined).")
    mlflow: dict[str, Any] | None = Field(None, description="MLflow tracking: enabled, and when on its outbox "
                                                            "depth, last error and last success (never a reason "
                                                            "to be unhealthy).")


class Page(Answer):
    """A page of a long list of an evaluation's analysis: ``items`` from ``offset``, ``count`` in all."""

    eval_id: int
    count: int = Field(ge=0, description="How many there are in all (the true count, not only those listed).")
    offset: int = Field(ge=0)
    limit: int = Field(ge=1)
    items: list[dict[str, Any]]


class GalleryPage(Page):
    """Failure examples of one kind (and class): ``count`` such failures in all, of which the analysis keeps
    ``stored`` as examples (the most confident false positives and mistakes, the largest misses); ``items``
    page through those. Each item is the analysis' example; for a task that predicts more than boxes it also
    carries the ``geometry`` of its prediction (``segmentation``, ``keypoints`` or ``obb``/``poly``, image pixels) and
    ``ground_truth``: the image's labelled objects (normalised, see ``Annotations``)."""

    kind: str
    cls: str | None = None
    stored: int = Field(ge=0)


class CellPage(Page):
    """The images behind one confusion-matrix cell (``count`` in all): each ``{image, index}`` with that image's
    ``annotations`` restricted to the cell's classes."""

    predicted: str
    true: str


class Annotations(Answer):
    """What was predicted and labelled on one image. Detection and its kin: ``predictions``, the rows of the
    predictions artifact at or above the operating point (``bbox`` [x, y, w, h] in image pixels, ``class``,
    ``score``, and the task's geometry); ``ground_truth``, the label file's objects (``class``, ``box``
    [cx, cy, w, h] and ``points``, normalised to the image's size). Classification: ``true`` (class name),
    ``top5`` (class names) and ``conf``."""

    eval_id: int
    image: str
    index: int = Field(ge=0, description="The image's position in the evaluation's list.")
    task: str
    conf_threshold: Num = None
    predictions: list[dict[str, Any]] | None = None
    ground_truth: list[dict[str, Any]] | None = None
    true: str | None = None
    top5: list[str] | None = None
    conf: list[float] | None = None
