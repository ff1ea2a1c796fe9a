"""What ``/v1/vision/models`` shows: versions on disk, what current.pt holds, evaluations, decisions.

File hashes come from the process-wide cache by file identity
(``evaluation.file_cache``), so listing a folder of large checkpoints hashes
each file once, not on every request.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat
from pathlib import Path
from typing import Any

from daemon.app.version_status import Known, with_status
from evaluation.file_cache import sha256_if_exists
from evaluation.model_resolution import CURRENT, list_versions
from store import checkpoints, promotions, rankings
from store.database import Database
from vocab.errors import NotFound, PathNotAllowed
from vocab.files import check_model_name, is_model_name, is_under


def model_names(root: Path) -> list[str]:
    """Folders under the models root that hold a current.pt or a v<n>.pt."""
    names: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return names
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and is_model_name(entry.name):
            d = Path(entry.path)
            if (d / CURRENT).is_file() or list_versions(d):
                names.append(entry.name)
    return names


def _leaves_root(path: Path, root: Path) -> bool:
    try:
        return not is_under(path, root)
    except OSError:
        return True


def describe_files(root: Path, name: str) -> dict[str, Any]:
    """Versions with sha256 and size, and what current.pt holds (sha256 and the version it equals).

    Nothing outside the models root is read: a model folder that is a link
    leaving the root is refused (403), as model resolution refuses it; a
    checkpoint that is such a link is listed without a hash and with the
    reason, so the rest of the model stays visible.
    """
    model_dir = root / check_model_name(name)
    versions = list_versions(model_dir)
    current = model_dir / CURRENT
    if not versions and not current.is_file():
        raise NotFound(f"model not found: {name}")
    if _leaves_root(model_dir, root):
        raise PathNotAllowed(f"{model_dir} is a link that leaves the models root")
    outside = "a link that leaves the models root: not read"
    rows = []
    by_sha: dict[str, int] = {}
    for n, path in versions.items():
        if _leaves_root(path, root):
            rows.append({"version": n, "path": str(path), "sha256": None, "size_mb": None, "onnx": None,
                         "error": outside})
            continue
        sha = sha256_if_exists(path)
        if sha is not None:
            by_sha.setdefault(sha, n)
        rows.append({"version": n, "path": str(path), "sha256": sha,
                     "size_mb": path.stat().st_size / (1024 * 1024) if path.exists() else None,
                     "onnx": str(path.with_suffix(".onnx")) if path.with_suffix(".onnx").exists() else None})
    if current.is_file() and _leaves_root(current, root):
        current_view: dict[str, Any] | None = {"sha256": None, "version": None, "error": outside}
    else:
        current_sha = sha256_if_exists(current)
        current_view = None if current_sha is None else {"sha256": current_sha, "version": by_sha.get(current_sha)}
    return {"name": name, "path": str(model_dir), "versions": rows, "current": current_view}


async def model_detail(db: Database, root: Path, name: str, waiting: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's files, evaluations, watcher records and decisions; each version with its status
    (``daemon.app.version_status``). ``waiting``: what the watcher waits for in the model's folder."""
    out = await asyncio.to_thread(describe_files, root, name)
    out["evaluations"] = await db.read(lambda c: rankings.latest_for_model(c, name, 20))
    out["skipped"] = await db.read(lambda c: checkpoints.skipped(c, name))
    out["checkpoints"] = await db.read(lambda c: checkpoints.for_model(c, name))
    out["promotions"] = await db.read(lambda c: promotions.history(c, name, 50))
    out["waiting"] = waiting
    shas_seen = {v["sha256"] for v in out["versions"] if v.get("sha256")}
    decisions = await db.read(lambda c: {s: d for s in shas_seen if (d := promotions.latest_on(c, name, s))})
    known = Known.of((out["current"] or {}).get("sha256"), waiting, out["skipped"], out["checkpoints"], decisions,
                     out["evaluations"])
    out["versions"] = with_status(out["versions"], known)
    return out


def folder_size_mb(folder: Path) -> float:
    """The size of the regular files under ``folder`` (links not followed), in MiB to 2 decimals."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return round(total / (1024 * 1024), 2)


async def model_list(db: Database, root: Path) -> dict[str, Any]:
    """LlamaFarm's runtime shape ``{"models": [{name, versions: <count>, has_current, size_mb}], "total"}``,
    each model also with its ``version_numbers`` and ``latest_evaluation``."""
    names = await asyncio.to_thread(model_names, root)
    out = []
    for name in names:
        versions = await asyncio.to_thread(list_versions, root / name)
        latest = await db.read(functools.partial(rankings.latest_for_model, model_name=name, limit=1))
        out.append({
            "name": name,
            "versions": len(versions),
            "has_current": (root / name / CURRENT).is_file(),
            "size_mb": await asyncio.to_thread(folder_size_mb, root / name),
            "version_numbers": sorted(versions),
            "latest_evaluation": latest[0] if latest else None,
        })
    return {"models": out, "total": len(out)}
