"""The one exception hierarchy of the project.

Every error a user can cause is a ``VisionEvalError`` subclass whose name says
what went wrong; ``handlers/middleware.py`` maps each class to one HTTP status
in one table. The message is the user-facing ``detail``: it must say what is
wrong and, where it can, how to fix it.
"""


class VisionEvalError(Exception):
    """Base class: a problem with the request or the data, not a bug."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(VisionEvalError):
    """Malformed or out-of-range input (HTTP 400)."""


class DatasetError(InvalidRequest):
    """The dataset YAML or its files cannot be evaluated as given (HTTP 400)."""


class WeightsError(InvalidRequest):
    """A custom scoring-weights object breaks the rules of docs/metrics.md, "Custom weights" (HTTP 400)."""


class ClassMismatchError(DatasetError):
    """The checkpoint's class names differ from the dataset's (HTTP 400)."""


class UnsupportedTask(InvalidRequest):
    """A task other than detection was requested (HTTP 400)."""


class CheckpointError(InvalidRequest):
    """A checkpoint file is corrupt, truncated or not a YOLO detector (HTTP 400)."""


class PathNotAllowed(VisionEvalError):
    """A path lies outside the configured allowed roots (HTTP 403)."""


class NotFound(VisionEvalError):
    """A model, job, version or evaluation does not exist (HTTP 404)."""


class Conflict(VisionEvalError):
    """The request conflicts with the current state, e.g. cancelling a finished job (HTTP 409)."""


class QueueFull(VisionEvalError):
    """The job queue is at its configured bound (HTTP 503 with Retry-After)."""

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class StoreBusy(VisionEvalError):
    """The SQLite file stayed locked (by another process) past the busy timeout (HTTP 503 with Retry-After)."""

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class ServiceClosed(VisionEvalError):
    """The daemon is shutting down and accepts no new work (HTTP 503)."""


class ConfigError(VisionEvalError):
    """The daemon's configuration file or environment overrides are invalid (start-up only)."""


class HomeInUse(VisionEvalError):
    """Another daemon holds this database or models root (start-up only: exit status 2)."""


class DatabaseRefused(VisionEvalError):
    """The database file is neither vision-evald's nor LlamaFarm's, is from a newer vision-evald, or a
    LlamaFarm file could not be adopted (start-up only: the daemon exits with status 2, file untouched)."""


class JobError(VisionEvalError):
    """Why a job failed outside the user's input: reported in the job's ``error``, never raised to HTTP."""


class WorkerDied(JobError):
    """The worker process running the job exited (crash, OOM kill, kill -9)."""


class JobTimedOut(JobError):
    """The job ran past its kind's timeout and its worker was killed."""


class JobCancelled(JobError):
    """The job was cancelled by request while it ran."""


class InternalError(JobError):
    """An unexpected exception inside a worker (a bug, or a library failure)."""
