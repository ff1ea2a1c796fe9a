"""ONNX exports: what an export's own metadata says about it, read without torch or onnxruntime.

ultralytics writes its export settings into the ONNX file's ``metadata_props``
(``imgsz``, ``batch``, ``names``, ``task``, ``args`` with ``dynamic`` and the
precision). ``read_export`` parses them with the ``onnx`` package (protobuf
only), so the HTTP process can check a request against an export (its task
included) before a job exists. ``export_shape`` is the one rule for the input
shape an export is evaluated at: a dynamic export at the requested size, with rectangular
batches like a ``.pt``; a static export only at its own size and batch, padded
to its square (or fixed rectangle), as ultralytics' validator does.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vocab.errors import CheckpointError, InvalidRequest
from vocab.tasks import BY_ULTRALYTICS, DEFAULT_TASK, task_of_ultralytics
from vocab.tasks import task as task_named

FORMATS = ("pt", "onnx")


def model_format(path: str | Path) -> str:
    """``onnx`` for a ``.onnx`` file, else ``pt``."""
    return "onnx" if Path(path).suffix.lower() == ".onnx" else "pt"


@dataclass(frozen=True)
class ExportInfo:
    """An ONNX export's settings, from its metadata and graph."""

    imgsz: list[int]  # [height, width] the export was made at
    batch: int  # the export's batch size (the only one a static export accepts)
    dynamic: bool  # input height, width and batch are free
    half: bool  # FP16 weights
    opset: int | None  # the default-domain opset
    names: list[str] | None  # class names by index
    task: str | None  # vision-evald's task name (e.g. "classification"); None when the metadata has none
    ultralytics_task: str | None  # ultralytics' name of it (e.g. "classify")
    exporter_version: str | None  # ultralytics version that wrote the export
    kpt_shape: list[int] | None = None  # a pose export's [keypoints, dims]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _literal(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def _names(raw: Any) -> list[str] | None:
    if isinstance(raw, dict):
        try:
            return [str(raw[k]) for k in sorted(raw, key=int)]
        except (TypeError, ValueError):
            return None
    if isinstance(raw, list):
        return [str(n) for n in raw]
    return None


def _input_dims(model: Any) -> list[int | None]:
    """The first graph input's dims: an int for a fixed one, None for a symbolic one."""
    if not model.graph.input:
        return []
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def read_export(path: str | Path, task: str | None = DEFAULT_TASK) -> ExportInfo:
    """The metadata of an ONNX export; CheckpointError when the file is not a usable ONNX export of ``task``.

    ``task`` (a name or alias) is the task the caller can use; an export of another task is refused, saying
    both. ``task=None`` reads an export of any task vision-evald knows. An export whose metadata names no
    task is not refused (it predates ultralytics writing one).
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for bytes that are not a model
        raise CheckpointError(f"cannot read ONNX export {path}: {type(exc).__name__}: {exc}") from exc
    props = {p.key: p.value for p in model.metadata_props}
    args = _literal(props.get("args"))
    args = args if isinstance(args, dict) else {}
    dims = _input_dims(model)
    if len(dims) != 4:
        raise CheckpointError(f"ONNX export {path} does not take a (batch, channels, height, width) image input")
    imgsz = _literal(props.get("imgsz"))
    if not (isinstance(imgsz, list) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz)):
        if dims[2] is None or dims[3] is None:
            raise CheckpointError(f"ONNX export {path} has no 'imgsz' metadata (not written by ultralytics?)")
        imgsz = [dims[2], dims[3]]
    dynamic = bool(args.get("dynamic", any(d is None for d in dims)))
    batch = _literal(props.get("batch"))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    ul_task = props.get("task")
    found = _export_task(path, ul_task)
    if found is not None and task is not None and found != task_named(task).name:
        raise CheckpointError(f"ONNX export {path} is a {found} model ({ul_task!r}); expected {task_named(task).name}")
    return ExportInfo(
        imgsz=[int(v) for v in imgsz],
        batch=int(batch) if isinstance(batch, int) else (dims[0] or 1),
        dynamic=dynamic,
        half=bool(args.get("half")) or args.get("quantize") == 16,
        opset=int(opset) if opset is not None else None,
        names=_names(_literal(props.get("names"))),
        task=found,
        ultralytics_task=ul_task,
        exporter_version=props.get("version"),
        kpt_shape=_kpt_shape(_literal(props.get("kpt_shape"))),
    )


def _kpt_shape(raw: Any) -> list[int] | None:
    """A pose export's ``kpt_shape`` metadata as two integers, else None."""
    ok = isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(v, int) for v in raw)
    return [int(v) for v in raw] if ok else None


def _export_task(path: str | Path, ul_task: str | None) -> str | None:
    """vision-evald's name of an export's ``task`` metadata; CheckpointError for a task it does not know."""
    if ul_task is None:
        return None
    try:
        return task_of_ultralytics(ul_task).name
    except InvalidRequest:
        raise CheckpointError(f"ONNX export {path} is an ultralytics {ul_task!r} model; vision-evald knows "
                              f"{', '.join(BY_ULTRALYTICS)} models") from None


def export_shape(export: ExportInfo, imgsz: int | None, batch: int, default_imgsz: int) -> tuple[int, int]:
    """The (imgsz, batch) an export is evaluated at (see the module contract).

    ``imgsz`` None means "not asked for": a dynamic export then takes
    ``default_imgsz``, a static one its own size. A static export asked for
    another size is an InvalidRequest that says why.
    """
    if export.dynamic:
        return (default_imgsz if imgsz is None else imgsz), batch
    h, w = export.imgsz
    own = max(h, w)
    if imgsz is not None and imgsz != own:
        raise InvalidRequest(
            f"this ONNX export is static: its input is fixed at {h}x{w} (batch {export.batch}), so it can only "
            f"be evaluated at imgsz {own}, not {imgsz}; omit imgsz, or export with dynamic=True to evaluate "
            "at other sizes"
        )
    return own, export.batch
