"""The Ray actor: one warm worker on a cluster node, running the same tasks as a local worker.

Files cross machines by value, never by assuming a shared state folder:

- the daemon sends the bytes of the files it owns that a task reads
  (``FileRoles.inputs``: evidence for a comparison, a checkpoint to export);
- the task writes its outputs in a node-local staging folder; the actor
  returns their bytes (``FileRoles.outputs``: named by params, e.g. the
  predictions and evidence of an evaluation, with the files written beside
  them such as its error analysis; ``FileRoles.result_files``: named
  by the result, e.g. the trained checkpoint), and the daemon writes them where
  a local worker would have (``daemon.jobs.ray_backend``);
- checkpoints and datasets are read in place (a shared file system, the same
  paths on every node). Before an evaluation the actor checks the
  checkpoint's sha256 and the dataset fingerprint against what the daemon
  computed, so a node that sees other bytes fails the job and names itself.

This module imports neither ray nor torch at import time: the daemon imports
it for ``ROLES`` and ``TaskActor`` is wrapped with ``ray.remote`` by the backend.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.jobs.gpu_check import cpu_fallback_reason
from vocab.files import is_under


@dataclass(frozen=True)
class FileRoles:
    """Which params and result keys of a task name files, and how each crosses to the node."""

    inputs: tuple[str, ...] = ()  # params: daemon-side files sent by value
    outputs: tuple[str, ...] = ()  # params: files the task writes, returned by value
    scratch: tuple[str, ...] = ()  # params: folders the task may write into (node-local)
    result_files: tuple[str, ...] = ()  # result keys: files the task made, returned by value


ROLES: dict[str, FileRoles] = {
    "eval": FileRoles(outputs=("predictions_path", "evidence_path"), scratch=("work_dir",)),
    "compare": FileRoles(inputs=("evidence_a", "evidence_b")),
    "train": FileRoles(scratch=("work_dir",), result_files=("checkpoint",)),
    "export": FileRoles(inputs=("checkpoint",), result_files=("onnx",)),
    "analyse": FileRoles(inputs=("predictions_path", "evidence_path"), outputs=("predictions_path",)),
}


def node_name() -> str:
    """How errors and /healthz name this node: its host name and IP address."""
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - naming is best effort
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


def verify_inputs(params: dict[str, Any]) -> str | None:
    """Why this node cannot run an evaluation as the daemon saw it, or None when it can.

    An eval task's params (``vocab.contract.params.EvalTask``) hold the ``checkpoint_sha256`` and
    ``dataset_fingerprint`` the daemon read; both are recomputed here from the files this node reads.
    """
    from evaluation import task_data
    from evaluation.file_cache import file_sha256
    from vocab.contract.params import EvalTask
    from vocab.errors import VisionEvalError

    task = EvalTask.model_validate(params)
    spec, want_sha, want_fp = task.spec, task.checkpoint_sha256, task.dataset_fingerprint
    try:
        if want_sha and file_sha256(spec.model_path) != want_sha:
            return (f"the checkpoint {spec.model_path} on node {node_name()} is not the one the daemon "
                    f"hashed (sha256 {want_sha[:12]}...): it changed after submission, or the node sees another file")
        cache_root = Path(task.cache_root) if task.cache_root else None
        if want_fp and task_data.fingerprint(task_data.load(spec.dataset_path, spec.split, spec.task,
                                                            cache_root=cache_root)) != want_fp:
            return (f"the dataset {spec.dataset_path} on node {node_name()} differs from what the daemon "
                    "fingerprinted: its images or labels changed, or the node mounts another copy")
    except FileNotFoundError as exc:
        return f"node {node_name()} cannot read {exc.filename}: mount the same paths on every node"
    except VisionEvalError as exc:
        return f"node {node_name()}: {exc.detail}"
    return None


class _Staging:
    """A node-local folder per file param of one task: its inputs, outputs (and their siblings) and scratch."""

    def __init__(self, kind: str, params: dict[str, Any], inputs: dict[str, bytes]) -> None:
        self.roles = ROLES.get(kind, FileRoles())
        self.root = Path(tempfile.mkdtemp(prefix=f"vision-evald-{kind}-"))
        self.params = dict(params)
        self.bases: dict[str, Path] = {}  # param -> the local folder standing for its daemon-side location
        self.staged_inputs: set[Path] = set()
        for key, data in inputs.items():
            local = self._folder(key) / Path(params[key]).name
            local.write_bytes(data)
            self.staged_inputs.add(local)
            self.params[key] = str(local)
        for key in self.roles.outputs:
            self.params[key] = str(self._folder(key) / Path(params[key]).name)
        for key in self.roles.scratch:
            self.params[key] = str(self._folder(key))

    def _folder(self, key: str) -> Path:
        if key not in self.bases:
            self.bases[key] = self.root / key
            self.bases[key].mkdir(parents=True)
        return self.bases[key]

    def collect(self, result: dict[str, Any]) -> dict[str, Any]:
        """The bytes of every file written beside each output (the output itself and its siblings, e.g. an
        evaluation's error analysis beside its predictions), and of each result file with the param whose
        location it belongs to."""
        outputs = {key: {f.name: f.read_bytes() for f in sorted(self.bases[key].iterdir())
                         if f.is_file() and f not in self.staged_inputs}
                   for key in self.roles.outputs}
        files = {}
        for key in self.roles.result_files:
            if not result.get(key):
                continue
            path = Path(result[key]).resolve()
            for param, base in self.bases.items():
                if is_under(path, base):
                    files[key] = {"param": param, "relative": str(path.relative_to(base.resolve())),
                                  "data": path.read_bytes()}
                    break
        return {"outputs": outputs, "result_files": files}

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class TaskActor:
    """A warm worker (see module contract). Threaded (max_concurrency 2): ``progress`` answers while ``run`` works."""

    def __init__(self, device: str, torch_threads: int) -> None:
        from daemon.jobs.worker_main import prepare

        state = Path(tempfile.gettempdir()) / "vision-evald-ray"  # node-local ultralytics settings and font
        self._info = prepare(str(state), device, torch_threads)
        self._progress = 0.0
        self._detail: dict[str, Any] | None = None  # a train task's latest epoch report

    def info(self) -> dict[str, Any]:
        """The worker's info (versions, device), its node, GPUs and pid, and, on the CPU, what keeps CUDA
        from this node (``cuda_problem``; None on a GPU)."""
        import ray

        on_cpu = not str(self._info.get("device_kind", "")).startswith("cuda")
        return {**self._info, "node": node_name(), "node_id": ray.get_runtime_context().get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "pid": os.getpid(),
                "cuda_problem": cpu_fallback_reason() if on_cpu else None}

    def progress(self) -> float:
        return self._progress

    def detail(self) -> dict[str, Any] | None:
        return self._detail

    def run(self, kind: str, params: dict[str, Any], inputs: dict[str, bytes]) -> dict[str, Any]:
        """``run_task``'s message for this task, plus the bytes of the files it made (see module contract)."""
        from daemon.jobs.worker_main import run_task

        self._progress = 0.0
        self._detail = None
        if kind == "eval":
            problem = verify_inputs(params)
            if problem is not None:
                return {"type": "error", "error_type": "JobError", "detail": problem}
        staging = _Staging(kind, params, inputs)
        try:
            msg = run_task(kind, staging.params, self._set_progress)
            if msg["type"] == "result":
                msg.update(staging.collect(msg["result"]))
            return msg
        finally:
            staging.remove()

    def _set_progress(self, value: float, detail: dict[str, Any] | None = None) -> None:
        self._progress = float(value)
        if detail is not None:
            self._detail = detail
