"""Architecture YAMLs bundled with ultralytics, found on disk without importing it.

A train job may start from an architecture such as ``yolov8n.yaml``: built
from the YAML shipped inside the ultralytics package, never downloaded.
``detection_architecture`` finds that YAML as ``ultralytics.nn.tasks.yaml_model_load``
does (the file itself, else the unified file without the scale letter:
``yolov8n.yaml`` -> ``yolov8.yaml``) and accepts it only when its head ends
in a plain detection layer, so that a request naming an unknown or
non-detection architecture is refused when it is submitted.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

DETECT_HEADS = frozenset({"Detect", "v10Detect"})


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("ultralytics")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


def _find(directory: Path, name: str) -> Path | None:
    return next((p for p in sorted(directory.rglob("*.y*ml")) if p.name == name), None)


def detection_architecture(name: str) -> str | None:
    """Why ``name`` cannot be trained as a detection architecture here; None when it can."""
    directory = _models_dir()
    if directory is None or not directory.is_dir():
        return "ultralytics is not installed where the daemon runs, so no architecture YAML is known"
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(name).stem) + Path(name).suffix
    found = _find(directory, name) or _find(directory, unified)
    if found is None:
        return f"{name!r} is not an architecture bundled with this ultralytics (e.g. yolov8n.yaml, yolo11s.yaml)"
    try:
        head = yaml.safe_load(found.read_text(encoding="utf-8"))["head"][-1][2]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return f"the architecture file {found} cannot be read"
    if head not in DETECT_HEADS:
        return f"{name!r} is a {head} architecture; only detection can be trained"
    return None
