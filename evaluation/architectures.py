"""What a training may start from: a bundled architecture YAML or a checkpoint of the task, checked
without importing ultralytics or torch.

A train job starts from an architecture such as ``yolov8n-cls.yaml`` (built
from the YAML shipped inside the ultralytics package, never downloaded), or
from a checkpoint to fine-tune. ``architecture_problem`` finds an
architecture's YAML as ``ultralytics.nn.tasks.yaml_model_load`` does (the file
itself, else the unified file without the scale letter: ``yolov8n-cls.yaml`` ->
``yolov8-cls.yaml``) and accepts it only when its last head layer is a plain
head of the requested task (``TRAINABLE_HEADS``); ``checkpoint_problem``
accepts a checkpoint only when its metadata (``read_checkpoint_meta``) names
the requested task. ``base_problem`` is the one check for either. Each
returns why the base cannot train that task, or None when it can, so that a
request is refused when it is submitted.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

from evaluation.checkpoint_meta import read_checkpoint_meta
from vocab.errors import CheckpointError
from vocab.tasks import BY_ULTRALYTICS, Task
from vocab.tasks import task as task_named

# The last head layer of each architecture vision-evald trains, and its ultralytics task. Others (WorldDetect,
# YOLOE*, RTDETRDecoder, SemanticSegment, Depth) need other model classes, text encoders or tasks.
TRAINABLE_HEADS: dict[str, str] = {
    "Detect": "detect", "v10Detect": "detect", "Classify": "classify", "Segment": "segment",
    "Segment26": "segment", "Pose": "pose", "Pose26": "pose", "OBB": "obb", "OBB26": "obb",
}
ARCH_SUFFIXES = (".yaml", ".yml")


def base_problem(base: str, task: str) -> str | None:
    """Why ``base`` cannot start a training of ``task``: an architecture name (``*.yaml``) is checked by
    ``architecture_problem``, anything else is a checkpoint path checked by ``checkpoint_problem``."""
    if base.endswith(ARCH_SUFFIXES):
        return architecture_problem(base, task)
    return checkpoint_problem(Path(base), task)


def architecture_problem(name: str, task: str) -> str | None:
    """Why the architecture ``name`` cannot train ``task`` (a name or alias); None when it can."""
    wanted = task_named(task)
    directory = _models_dir()
    if directory is None or not directory.is_dir():
        return "ultralytics is not installed where the daemon runs, so no architecture YAML is known"
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + Path(name).suffix
    found = _find(directory, name) or _find(directory, unified)
    if found is None:
        return (f"{name!r} is not an architecture bundled with this ultralytics; {_a(wanted.name)} model trains "
                f"from {_family(wanted)} architecture such as {wanted.default_arch}")
    try:
        head = str(yaml.safe_load(found.read_text(encoding="utf-8"))["head"][-1][2])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return f"the architecture file {found} cannot be read"
    if head not in TRAINABLE_HEADS:
        return (f"{name} is {_a(head)} architecture, which vision-evald does not train; {_a(wanted.name)} model "
                f"trains from {_family(wanted)} architecture such as {wanted.default_arch}")
    kind = BY_ULTRALYTICS[TRAINABLE_HEADS[head]]
    if kind != wanted:
        return (f"{name} is {_a(kind.name)} architecture; {_a(wanted.name)} model trains from {_family(wanted)} "
                f"architecture such as {wanted.default_arch}")
    return None


def checkpoint_problem(path: Path, task: str) -> str | None:
    """Why the checkpoint at ``path`` cannot be fine-tuned for ``task``: unreadable, or of another task."""
    wanted = task_named(task)
    try:
        meta = read_checkpoint_meta(path)
    except CheckpointError as exc:
        return exc.detail
    if meta.task != wanted.name:
        return (f"{path} is {_a(meta.task)} checkpoint; {_a(wanted.name)} model trains from {_a(wanted.name)} "
                f"checkpoint or from {_family(wanted)} architecture such as {wanted.default_arch}")
    return None


def detection_architecture(name: str) -> str | None:
    """``architecture_problem(name, "detection")``: the name ``daemon/submissions.py`` calls today."""
    return architecture_problem(name, "detection")


def _family(task: Task) -> str:
    """How a task's architectures are named: "a -cls", "a -seg", ...; "a detection" for plain names."""
    stem = Path(task.default_arch).stem
    return f"a -{stem.split('-', 1)[1]}" if "-" in stem else _a(task.name)


def _a(word: str) -> str:
    """``word`` with its indefinite article: "a detection", "an obb"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("ultralytics")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


def _find(directory: Path, name: str) -> Path | None:
    return next((p for p in sorted(directory.rglob("*.y*ml")) if p.name == name), None)
