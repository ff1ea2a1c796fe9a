"""The contract's base classes and the field types its models share, each bound taken from vocab.

A request model (``Request``) refuses unknown fields and takes JSON types as
they are (strict: ``"320"`` is not ``320``, ``true`` is not ``1``);
``handlers.body`` reads form and query text as the declared types before
validation. An answer model (``Answer``) documents what the daemon sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import core_schema

from vocab.files import MODEL_NAME_PATTERN, MODEL_NAME_RULE
from vocab.tasks import ALIASES, TASKS
from vocab.terms import BATCH_MAX, BATCH_MIN, EVAL_TASKS, SPLITS

MAX_TEXT = 4096  # any text field: paths, names, JSON text in a query
MAX_REASON = 500
# A model name is one folder name under the models root.
NAME_PATTERN = MODEL_NAME_PATTERN
# How a message explains a pattern to a person (validation.parse).
PATTERN_RULES: dict[str, str] = {
    NAME_PATTERN: MODEL_NAME_RULE,
}


class Contract(BaseModel):
    """A declared request part: unknown fields refused, JSON types taken as they are (see module contract).

    ``NOUN`` names this model's keys in messages ("unknown gate(s): ...").
    """

    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")
    NOUN: ClassVar[str] = "field"


class Request(Contract):
    """A request body or query string: its top-level fields may arrive as text (form data, a query), which
    ``handlers.body`` reads as their declared types; nested ``Request`` models too, other values never."""


class Answer(BaseModel):
    """What the daemon answers, documented field by field; fields beyond the declared ones are allowed."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class OneOf:
    """``Annotated[str, OneOf(values)]``: one of ``values`` (a JSON Schema ``enum``), from a tuple in vocab."""

    values: tuple[str, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.literal_schema(list(self.values))


def task_names(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """``tasks`` and their ultralytics aliases: what a request may call them."""
    return (*tasks, *(alias for alias, name in ALIASES.items() if name in tasks))


def imgsz_bounds(tasks: tuple[str, ...]) -> dict[str, Any]:
    """Each task's ``imgsz`` bounds as JSON Schema keywords (``multipleOf`` only where it is over 1)."""
    out: dict[str, Any] = {}
    for name in tasks:
        t = TASKS[name]
        out[name] = {"minimum": t.imgsz_min, "maximum": t.imgsz_max,
                     **({"multipleOf": t.imgsz_multiple} if t.imgsz_multiple > 1 else {})}
    return out


def imgsz_type(tasks: tuple[str, ...]) -> Any:
    """``imgsz`` of a request that serves ``tasks``: the loosest of their bounds (each task's own are
    checked where the task is known, ``vocab.tasks.check_imgsz``); the document lists every task's."""
    served = [TASKS[name] for name in tasks]
    multiple = 0
    for t in served:
        multiple = gcd(multiple, t.imgsz_multiple)
    return Annotated[int, Field(
        ge=min(t.imgsz_min for t in served), le=max(t.imgsz_max for t in served),
        multiple_of=multiple if multiple > 1 else None,
        description="Image size. Its bounds depend on the task (of the request, or of the checkpoint): "
                    + "; ".join(f"{name} {b['minimum']}-{b['maximum']}"
                                + (f", a multiple of {b['multipleOf']}" if "multipleOf" in b else "")
                                for name, b in imgsz_bounds(tuple(TASKS)).items()) + ".",
        json_schema_extra={"x-imgsz-by-task": imgsz_bounds(tuple(TASKS))},
    )]


def _weight_keys(tasks: tuple[str, ...]) -> tuple[str, ...]:
    keys: dict[str, None] = {}
    for name in tasks:
        keys.update(dict.fromkeys(TASKS[name].weight_keys))
    return tuple(keys)


Text = Annotated[str, Field(max_length=MAX_TEXT)]
PathOrName = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
ModelName = Annotated[str, Field(pattern=NAME_PATTERN)]
Reason = Annotated[str, Field(max_length=MAX_REASON)]
Split = Annotated[str, OneOf(SPLITS)]
if TYPE_CHECKING:  # what mypy sees of the generated types
    Imgsz = int
else:
    Imgsz = imgsz_type(EVAL_TASKS)
Batch = Annotated[int, Field(ge=BATCH_MIN, le=BATCH_MAX)]
WEIGHT_KEYS: tuple[str, ...] = _weight_keys(EVAL_TASKS)
# Custom scoring weights: each in [0, 1]; their sum and the task's keys are vocab.scoring's to check.
Weights = dict[Annotated[str, OneOf(WEIGHT_KEYS)], Annotated[float, Field(ge=0, le=1)]]
