"""Atomic, durable file publication (DESIGN.md "Identity, caching, promotion").

``atomic_copy`` writes a temp file in the destination's folder, fsyncs it,
``os.replace``s it over the destination and fsyncs the folder: a reader sees
the old file or the new one, never a mix, and after a crash the rename is
either fully there or not at all. ``publish_new`` does the same but refuses
to overwrite an existing name (``os.link``), so two writers can never both
create the same ``v<n>.pt``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

TMP_MARK = ".tmp-"
_CHUNK = 1 << 20


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
