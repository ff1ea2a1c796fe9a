"""Model names, versions and paths: how a client's ``model`` string becomes a checkpoint file.

A model string is either a *name* (a folder under the models root) or a
*path* to a ``.pt`` or ``.onnx`` file. A name resolves to
``<root>/<name>/current.pt``, else to the highest ``v<n>.pt`` by number (v10
beats v9); asked for the ``onnx`` format, a name resolves to its highest
``v<n>.onnx`` (the export training writes beside ``v<n>.pt``). A path must be
absolute, end in ``.pt`` or ``.onnx`` and lie under an allowed root once
symlinks are resolved. A path is named as the user wrote it (``name_for_path``): an
ultralytics run's ``<run>/weights/best.pt`` or ``last.pt`` by its run,
``v<n>.pt``, ``v<n>.onnx`` and ``current.pt`` by their folder, anything else by its stem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vocab.contract.fields import NAME_PATTERN
from vocab.errors import InvalidRequest, NotFound, PathNotAllowed

NAME_RE = re.compile(NAME_PATTERN)  # the contract's: one folder name, no ".."
VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})\.pt$")
EXPORT_VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})\.onnx$")
MODEL_SUFFIXES = (".pt", ".onnx")
CURRENT = "current.pt"


@dataclass(frozen=True)
class ResolvedModel:
    """A checkpoint file and where it came from."""

    path: Path
    name: str
    version: int | None  # the v<n> it is, when resolved to a versioned file


def check_name(name: str) -> str:
    """A model name is a single folder name: letters, digits, '.', '_', '-'; no '..'."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidRequest(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def version_of(path: Path) -> int | None:
    """n for a file named ``v<n>.pt``, else None (the watcher's checkpoints)."""
    m = VERSION_RE.match(path.name)
    return int(m.group(1)) if m else None


def any_version_of(path: Path) -> int | None:
    """n for a file named ``v<n>.pt`` or ``v<n>.onnx``, else None."""
    m = VERSION_RE.match(path.name) or EXPORT_VERSION_RE.match(path.name)
    return int(m.group(1)) if m else None


def list_versions(model_dir: Path, pattern: re.Pattern[str] = VERSION_RE) -> dict[int, Path]:
    """The ``v<n>.pt`` files of a model folder (``v<n>.onnx`` with EXPORT_VERSION_RE), by number
    (regular files only)."""
    out: dict[int, Path] = {}
    if not model_dir.is_dir():
        return out
    for entry in model_dir.iterdir():
        m = pattern.match(entry.name)
        if m is not None and entry.is_file():
            out[int(m.group(1))] = entry
    return dict(sorted(out.items()))


def export_beside(checkpoint: Path) -> Path:
    """The ONNX export that belongs beside a checkpoint: ``v<n>.pt`` -> ``v<n>.onnx``."""
    return checkpoint.with_suffix(".onnx")


def is_under(path: Path, roots: Sequence[Path]) -> bool:
    """Whether a resolved path lies under one of the (resolved) roots."""
    return any(path.is_relative_to(root.resolve()) for root in roots)


def looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.endswith(MODEL_SUFFIXES)


def resolve_path(raw: str, allowed_roots: Sequence[Path]) -> Path:
    """An absolute ``.pt`` or ``.onnx`` path under the allowed roots, symlinks resolved."""
    if "\x00" in raw:
        raise InvalidRequest("model path contains a NUL byte")
    p = expand_user(raw, "model path")
    if not p.is_absolute():
        raise InvalidRequest(f"model path must be absolute: {raw!r}")
    if p.suffix not in MODEL_SUFFIXES:
        raise InvalidRequest(f"model path must name a .pt or .onnx file: {raw!r}")
    try:
        real = p.resolve()
        if not is_under(real, allowed_roots):
            raise PathNotAllowed(f"model path outside the allowed directories: {raw}")
        if not real.is_file():
            raise NotFound(f"model file not found: {raw}")
    except OSError as exc:  # e.g. a name longer than the filesystem allows
        raise InvalidRequest(f"model path cannot be used: {exc.strerror or exc}") from None
    return real


def expand_user(raw: str, what: str) -> Path:
    """``Path(raw).expanduser()``; a ``~user`` that does not exist is the client's error, not a 500."""
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        raise InvalidRequest(f"{what} names a home directory that does not exist: {raw!r}") from None


RUN_WEIGHTS = ("best.pt", "last.pt")


def name_for_path(path: Path) -> str:
    """The model name of a checkpoint path (see the module contract); ``path`` as given, not resolved."""
    path = Path(os.path.normpath(path))
    if path.name in RUN_WEIGHTS and path.parent.name == "weights" and path.parent.parent.name:
        return path.parent.parent.name
    if (any_version_of(path) is not None or path.name == CURRENT) and path.parent.name:
        return path.parent.name
    return path.stem


def resolve_model(model: str, models_root: Path, allowed_roots: Sequence[Path],
                  fmt: str | None = None) -> ResolvedModel:
    """Resolve a client's model string (see the module contract); ``fmt`` is ``pt``, ``onnx`` or None
    (whatever the string names).

    Raises InvalidRequest (malformed, or a path of the other format),
    PathNotAllowed (outside the roots) or NotFound (no such model or file).
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model must be a non-empty string: a model name or a path to a .pt or .onnx file")
    if fmt not in (None, "pt", "onnx"):
        raise InvalidRequest(f"format must be 'pt' or 'onnx', got {fmt!r}")
    model = model.strip()
    if looks_like_path(model):
        path = resolve_path(model, allowed_roots)
        if fmt is not None and path.suffix != f".{fmt}":
            raise InvalidRequest(f"format {fmt!r} does not match the model path {model!r}")
        return ResolvedModel(path, name_for_path(expand_user(model, "model path")), any_version_of(path))
    name = check_name(model)
    root = models_root.resolve()
    model_dir = root / name
    if fmt == "onnx":
        return _resolve_export(name, root, model_dir)
    current = model_dir / CURRENT
    if current.is_file():
        real = current.resolve()
        if not real.is_relative_to(root):
            raise PathNotAllowed(f"{current} is a link that leaves the models root")
        return ResolvedModel(real if real != current else current, name, None)
    versions = list_versions(model_dir)
    if not versions:
        raise NotFound(f"model not found: {name} (no current.pt or v<n>.pt in {model_dir})")
    return _latest(name, root, versions)


def _resolve_export(name: str, root: Path, model_dir: Path) -> ResolvedModel:
    """The highest ``v<n>.onnx`` of a model."""
    exports = list_versions(model_dir, EXPORT_VERSION_RE)
    if not exports:
        raise NotFound(f"model {name} has no ONNX export (no v<n>.onnx in {model_dir})")
    return _latest(name, root, exports)


def _latest(name: str, root: Path, versions: dict[int, Path]) -> ResolvedModel:
    """The highest version of ``versions`` (ascending), which must not be a link leaving the models root."""
    n, path = next(reversed(versions.items()))
    real = path.resolve()
    if not real.is_relative_to(root):
        raise PathNotAllowed(f"{path} is a link that leaves the models root")
    return ResolvedModel(real, name, n)
