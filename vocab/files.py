"""The file rules every layer shares: model names, "under a root", file identity, atomic publication.

- **Model names** (``is_model_name``, ``check_model_name``): a model is a
  single folder under the models root named with 1-128 letters, digits,
  ``.``, ``_`` or ``-``, starting with a letter or digit, never containing
  ``..``. The watcher, the API, the config and the store use this one rule.
- **Under a root** (``is_under``): a path lies under a root when its resolved
  form (symlinks followed) lies under the root's resolved form.
- **File identity** (``FileIdentity``, ``identity``): device, inode, size and
  mtime in nanoseconds; equal identities mean "the same file, unchanged" for
  every cache keyed by a file (hashes, watcher settling).
- **Atomic publication, one fsync policy** (docs/development.md, "Files"):
  every file another reader may see is written to a temp file in the
  destination's folder, fsynced, ``os.replace``d over the destination, and
  the folder is fsynced: a reader sees the old file or the new one, never a
  mix, and after a crash the rename is either fully there or not at all.
  ``atomic_copy`` copies (optionally checking the bytes' sha256),
  ``atomic_write_bytes``/``atomic_write_text``/``atomic_write_json`` write
  data, ``publish_new`` refuses to overwrite an existing name (``os.link``),
  so two writers can never both create the same ``v<n>.pt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vocab.errors import InvalidRequest

TMP_MARK = ".tmp-"
_CHUNK = 1 << 20
MODEL_NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # also the contract's (JSON Schema)
MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN)
MODEL_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'"
FileIdentity = tuple[int, int, int, int]  # (st_dev, st_ino, st_size, st_mtime_ns)
MODEL_SUFFIXES = (".pt", ".onnx")  # a checkpoint or its ONNX export


def is_model_name(name: object) -> bool:
    """Whether ``name`` is a valid model name (see module contract)."""
    return isinstance(name, str) and bool(MODEL_NAME_RE.match(name))


def check_model_name(name: object) -> str:
    """``name`` when it is a valid model name; InvalidRequest saying the rule otherwise."""
    if not is_model_name(name):
        raise InvalidRequest(f"invalid model name {name!r}: use {MODEL_NAME_RULE}")
    assert isinstance(name, str)
    return name


def looks_like_path(model: str) -> bool:
    """Whether a client's model string names a file (a path or a .pt/.onnx name) rather than a model name."""
    return "/" in model or "\\" in model or model.endswith(MODEL_SUFFIXES)


def is_under(path: Path, roots: Path | Iterable[Path]) -> bool:
    """Whether ``path``, resolved, lies under one of ``roots``, resolved (a root itself counts)."""
    real = path.resolve()
    return any(real.is_relative_to(root.resolve()) for root in ([roots] if isinstance(roots, Path) else roots))


def identity(st: os.stat_result) -> FileIdentity:
    """The identity of a stat result (see module contract)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def identity_of(path: Path) -> FileIdentity | None:
    """The identity of the file at ``path`` (symlinks followed); None when it cannot be stat'ed."""
    try:
        return identity(os.stat(path))
    except OSError:
        return None


class ContentChanged(Exception):
    """The source's bytes are not the ones expected (it changed since it was hashed)."""


def tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_to_tmp(src: Path, dest: Path, expected_sha256: str | None) -> Path:
    tmp = tmp_name(dest)
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            while block := fin.read(_CHUNK):
                digest.update(block)
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise ContentChanged(f"{src} changed since it was evaluated (sha256 {digest.hexdigest()[:12]}...)")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_copy(src: Path, dest: Path, expected_sha256: str | None = None) -> None:
    """Replace ``dest`` with a copy of ``src`` atomically and durably (see module contract)."""
    tmp = _copy_to_tmp(src, dest, expected_sha256)
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    """Replace ``dest`` with ``data`` atomically and durably (temp file, fsync, rename, fsync of the folder)."""
    tmp = tmp_name(dest)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def atomic_write_text(dest: Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_write_json(dest: Path, value: Any, indent: int | None = None) -> None:
    """``atomic_write_bytes`` of ``value`` as JSON."""
    atomic_write_text(dest, json.dumps(value, indent=indent))


def publish_new(src: Path, dest: Path, expected_sha256: str | None = None) -> bool:
    """Create ``dest`` as a copy of ``src``; False (nothing written) if ``dest`` already exists."""
    tmp = _copy_to_tmp(src, dest, expected_sha256)
    try:
        os.link(tmp, dest)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)
    return True


def remove_stray_tmp(folder: Path) -> list[Path]:
    """Delete temp files a crash left behind in ``folder`` (ours only: ``.<name>.tmp-*``)."""
    removed = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") and TMP_MARK in entry.name and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed
