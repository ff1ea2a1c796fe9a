"""What a client may send: every request body and the query parameters of every GET, declared once.

A field left out gets the default declared here; where the default is the
daemon's configuration (``[eval] batch``, ``[eval] split``, ``[promotion]``
bootstrap settings) the field is None and the daemon fills it in
(``daemon.jobs.submissions``). Gates left out keep the configured ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from vocab.contract.fields import (
    MAX_TEXT,
    Batch,
    Contract,
    Imgsz,
    ModelName,
    OneOf,
    PathOrName,
    Reason,
    Request,
    Split,
    Text,
    Weights,
    imgsz_type,
    task_names,
)
from vocab.errors import InvalidRequest
from vocab.tasks import EVAL_IMGSZ_DEFAULT_DOC, TASK_NAMES, canonical_task, check_imgsz
from vocab.terms import (
    DEFAULT_BATCH,
    DEFAULT_IMGSZ,
    GATE_DEFAULTS,
    JOB_KINDS,
    JOB_STATUSES,
    TRAIN_TASKS,
)

if TYPE_CHECKING:
    TrainImgsz = int
else:
    TrainImgsz = imgsz_type(TRAIN_TASKS)

Fraction = Annotated[float, Field(ge=0, le=1)]  # scores, APs and recalls lie in [0, 1]
Limit = Annotated[int, Field(ge=1, le=1000)]
SEED_MAX = 2**32 - 1
_NAME_DOC = ("The name to record a checkpoint path under (history, leaderboard); without it a path is named by "
             "its run (<run>/weights/best.pt), its folder (v<n>.pt, current.pt) or its stem.")
_MODEL_DOC = ("A model name (<models root>/<name>/current.pt, else its latest v<n>.pt; with format onnx its latest "
              "v<n>.onnx) or an absolute path to a .pt or .onnx file under the allowed roots.")
_SPLIT_DOC = "The dataset split evaluated (default: [eval] split, val unless configured)."
_DATASET_DOC = ("An absolute path under the allowed roots: a dataset YAML, a folder holding one, an ImageFolder "
                "(classification: <split>/<class>/ images) or a COCO JSON file.")
_IMGSZ_DOC = ("Default: the model folder's pipeline.json (watcher), [models.<name>] imgsz, [eval] imgsz, else "
              f"{EVAL_IMGSZ_DEFAULT_DOC}.")


class Gates(Contract):
    """Promotion gates for this decision, overriding [promotion] in the config (whose own defaults are
    these); judged on a paired bootstrap of the candidate against the incumbent. null turns a gate off."""

    NOUN: ClassVar[str] = "gate"
    require_significant: bool = GATE_DEFAULTS["require_significant"]
    min_delta: Fraction = GATE_DEFAULTS["min_delta"]
    max_class_regression: Fraction | None = GATE_DEFAULTS["max_class_regression"]
    min_class_support: Annotated[int, Field(ge=0, le=10**9)] = GATE_DEFAULTS["min_class_support"]
    max_size_recall_regression: Fraction | None = GATE_DEFAULTS["max_size_recall_regression"]

    def overrides(self) -> dict[str, object]:
        """Only the gates the request set (the others keep the configured ones)."""
        return self.model_dump(exclude_unset=True)


class EvalRequest(Request):
    """``POST /v1/vision/eval``."""

    model: Annotated[PathOrName, Field(description=_MODEL_DOC)]
    dataset: Annotated[PathOrName, Field(description=_DATASET_DOC)]
    imgsz: Imgsz | None = Field(None, description=f"{_IMGSZ_DOC} A static ONNX export is evaluated only at its "
                                                  "own (omit it).")
    batch_size: Batch | None = Field(None, description=f"Default: [eval] batch ({DEFAULT_BATCH} unless configured).")
    weights: Weights | None = Field(None, description="Custom scoring weights (each in [0, 1], sum <= 1); the "
                                                      "remaining default weights fill the rest.")
    allow_class_mismatch: bool = False
    auto_promote: bool = False
    gates: Gates | None = None
    name: Annotated[ModelName | None, Field(description=_NAME_DOC)] = None
    format: Annotated[str, OneOf(("pt", "onnx"))] | None = Field(
        None, description="What a model name resolves to; a path's suffix decides by itself.")
    split: Split | None = Field(None, description=_SPLIT_DOC)


class CompareRequest(Request):
    """``POST /v1/vision/eval/compare``: both models on one dataset, with paired-bootstrap statistics."""

    model_a: Annotated[PathOrName, Field(description=_MODEL_DOC)]
    model_b: Annotated[PathOrName, Field(description=_MODEL_DOC)]
    dataset: Annotated[PathOrName, Field(description=_DATASET_DOC)]
    imgsz: Imgsz | None = Field(None, description=_IMGSZ_DOC)
    batch_size: Batch | None = Field(None, description=f"Default: [eval] batch ({DEFAULT_BATCH} unless configured).")
    weights: Weights | None = None
    bootstrap_resamples: Annotated[int, Field(ge=0, le=100_000)] | None = Field(
        None, description="Default: [promotion] bootstrap_resamples (1000 unless configured); 0 for none.")
    bootstrap_seed: Annotated[int, Field(ge=0, le=SEED_MAX)] | None = Field(
        None, description="Default: [promotion] bootstrap_seed (0 unless configured).")
    name_a: Annotated[ModelName | None, Field(description=_NAME_DOC)] = None
    name_b: Annotated[ModelName | None, Field(description=_NAME_DOC)] = None
    split: Split | None = Field(None, description=_SPLIT_DOC)


class TrainConfig(Request):
    """Training settings: in a train request's ``config`` or flat beside its other fields."""

    NOUN: ClassVar[str] = "config field"
    epochs: Annotated[int, Field(ge=1, le=1000)] = 10
    batch_size: Batch = DEFAULT_BATCH
    imgsz: TrainImgsz = DEFAULT_IMGSZ
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.01
    patience: Annotated[int, Field(ge=0, le=500)] = 50


class TrainRequest(Request):
    """``POST /v1/vision/train``. Training settings go in ``config`` or flat beside the other fields (as form
    data does); a key given both ways must agree. ``imgsz`` is checked against the task's bounds."""

    model: Annotated[ModelName, Field(description="The model name: the new checkpoint is <name>/v<n>.pt.")]
    dataset: Annotated[PathOrName, Field(description=_DATASET_DOC)]
    task: Annotated[str, OneOf(task_names(TRAIN_TASKS))] = TRAIN_TASKS[0]
    config: TrainConfig | None = None
    base_model: Annotated[Text | None, Field(
        description="A model name, a .pt path, or a bundled architecture like yolov8n.yaml.")] = None
    auto_eval: bool = False
    auto_promote: bool = False
    eval_weights: Weights | None = None
    gates: Gates | None = None
    split: Split | None = Field(None, description="The split auto-eval evaluates (default: [eval] split).")
    epochs: Annotated[int, Field(ge=1, le=1000)] | None = None
    batch_size: Batch | None = None
    imgsz: TrainImgsz | None = None
    learning_rate: Annotated[float, Field(gt=0, le=1)] | None = None
    patience: Annotated[int, Field(ge=0, le=500)] | None = None

    @model_validator(mode="after")
    def _settings_agree(self) -> TrainRequest:
        nested = self.config.model_dump(exclude_unset=True) if self.config is not None else {}
        for key, value in nested.items():
            flat = getattr(self, key)
            if flat is not None and flat != value:
                raise PydanticCustomError("request", f"{key!r} is given both flat ({flat!r}) and in config ({value!r})")
        try:
            check_imgsz(self.training().imgsz, self.task)
        except InvalidRequest as exc:
            raise PydanticCustomError("request", exc.detail) from None
        return self

    def training(self) -> TrainConfig:
        """The training settings: ``config``'s, with the flat fields given, over the defaults."""
        flat = {k: getattr(self, k) for k in TrainConfig.model_fields if getattr(self, k) is not None}
        base = self.config.model_dump(exclude_unset=True) if self.config is not None else {}
        return TrainConfig.model_validate({**base, **flat})

    def task_name(self) -> str:
        """The task's own name (an ultralytics alias such as ``detect`` is read as ``detection``)."""
        return canonical_task(self.task)


class PromoteRequest(Request):
    """``POST /v1/vision/models/{name}/promote``: make v<version>.pt current.pt now (audited). Refused (409) for
    a file that is not a usable checkpoint, another task or other classes than current.pt's, or a failed
    evaluation; a version not evaluated yet or refused by the gates needs ``force`` with a ``reason``."""

    version: Annotated[int, Field(ge=1, le=10**9, description="The v<n> to promote, e.g. 3.")]
    reason: Reason | None = None
    force: bool = Field(False, description="Promote a version not evaluated yet, or refused by the gates; needs "
                                           "a reason, and the ledger records what was overridden.")


class RollbackRequest(Request):
    """``POST /v1/vision/models/{name}/rollback`` (the body is optional)."""

    reason: Reason | None = None


# -- query parameters ------------------------------------------------------------------------------
class JobsQuery(Request):
    """``GET /v1/vision/jobs``."""

    status: Annotated[str, OneOf(JOB_STATUSES)] | None = Field(None, description="Only jobs in this state.")
    kind: Annotated[str, OneOf(JOB_KINDS)] | None = Field(None, description="Only jobs of this kind.")
    limit: Limit = Field(50, description="Max jobs to return.")


class TrainJobsQuery(Request):
    """``GET /v1/vision/train``."""

    status: Annotated[str, OneOf(JOB_STATUSES)] | None = Field(None, description="Only jobs in this state.")
    limit: Limit = Field(50, description="Max jobs to return.")


_WEIGHTS_QUERY = ("Score by these weights (a JSON object, checked like a request's, with the keys of `task`: "
                  "detection's when no task is given); each task's default weights if absent.")
_TASK_QUERY = "Only results of this task (an ultralytics name is accepted too)."
Task = Annotated[str, OneOf(task_names(TASK_NAMES))]
_FORMAT = Annotated[str, OneOf(("json", "csv"))]


class LeaderboardQuery(Request):
    """``GET /v1/vision/eval/leaderboard``."""

    dataset: Text | None = Field(None, description="Filter by dataset path.")
    limit: Limit = Field(20, description="Max results to return.")
    weights: Annotated[str, Field(max_length=MAX_TEXT)] | None = Field(None, description=_WEIGHTS_QUERY)
    content: Annotated[str, OneOf(("current", "all"))] = Field(
        "current", description="current: only results of each dataset's latest content; all: every content, marked.")
    format: _FORMAT = Field("json", description="csv: the same rows as CSV.")
    split: Split = Field("val", description="The split whose evaluations are ranked.")
    task: Task | None = Field(None, description=_TASK_QUERY)


class HistoryQuery(Request):
    """``GET /v1/vision/eval/leaderboard/{model_name}``."""

    limit: Limit = Field(50, description="Max results to return.")
    weights: Annotated[str, Field(max_length=MAX_TEXT)] | None = Field(None, description=_WEIGHTS_QUERY)
    format: _FORMAT = Field("json", description="csv: the same rows as CSV.")
    split: Split | None = Field(None, description="Only evaluations of this split (default: every split).")
    task: Task | None = Field(None, description=_TASK_QUERY)


class ErrorsQuery(Request):
    """``GET .../errors``."""

    boxes: bool = Field(True, description="Include the per-box lists (prediction_types, missed_boxes).")
    images: bool = Field(True, description="Include the per-image lists (images; cells: the images behind each "
                                           "confusion-matrix cell). false: what a page shows at once, whatever "
                                           "the number of images; .../cells and .../gallery page the rest.")


PAGE_LIMIT_MAX = 200


class PageQuery(Request):
    """A page of a long list: ``limit`` items from ``offset`` (answers say how many there are in all)."""

    offset: Annotated[int, Field(ge=0, le=10**9)] = Field(0, description="Items to skip.")
    limit: Annotated[int, Field(ge=1, le=PAGE_LIMIT_MAX)] = Field(24, description="Max items to return.")


class GalleryQuery(PageQuery):
    """``GET /v1/vision/evaluations/{eval_id}/gallery``: failure examples of one kind."""

    kind: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The kind of failure: an error type of the analysis (detection and its kin: duplicate, "
                    "classification, localization, both, background, missed; classification: mistakes).")
    cls: Text | None = Field(
        None, description="Only examples of this class (a false positive's predicted class, a miss's or a "
                          "mistake's true class).")


class CellQuery(PageQuery):
    """``GET /v1/vision/evaluations/{eval_id}/cells``: the images behind one confusion-matrix cell."""

    predicted: Annotated[int, Field(ge=0, le=10**6)] = Field(description="The cell's row (index into the "
                                                                         "matrix labels).")
    true: Annotated[int, Field(ge=0, le=10**6)] = Field(description="The cell's column.")


class AnnotationsQuery(Request):
    """``GET /v1/vision/evaluations/{eval_id}/annotations``: what was predicted and labelled on one image."""

    image: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = Field(
        description="An image name the evaluation lists.")
    cls: Text | None = Field(None, description="Only the predictions and labels of this class (classification: "
                                               "no effect).")


class NoQuery(Request):
    """A GET that takes no query parameter."""


class EvaluationPath(Request):
    """The path of ``/v1/vision/evaluations/{eval_id}`` and its sub-routes."""

    eval_id: Annotated[int, Field(ge=1, le=2**62, description="A stored evaluation's id (eval_id in results, "
                                                              "leaderboard and history).")]
