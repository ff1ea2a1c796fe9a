"""The GPU path, checked end to end in one run (issue 26): a JSON report in under 5 minutes on a CUDA machine.

Checks, each timed and reported as ``ok``, ``failed`` (with the error) or ``skipped`` (with the reason):

- ``environment``: torch, its CUDA build and devices, onnxruntime's providers, ray;
- ``eval_vs_bare``: our ``evaluate()`` on the device against a bare ``YOLO(ckpt).val()`` on the same
  device, data and settings: both times and every headline number (they must be equal);
- ``train_epoch``: one training epoch of a small detector on the device (``evaluation.training.train``);
- ``onnx``: the checkpoint exported to ONNX and evaluated on the device (onnxruntime's CUDA execution
  provider), against the ``.pt``'s numbers: the parity deltas and the provider that ran;
- ``ray_actor``: a local Ray head, one actor (``daemon.jobs.ray_actor.TaskActor``) holding the GPU
  (``num_gpus=1``), running an evaluation there: its GPU ids, device and numbers.

``--device cpu`` is a dry run for machines without a GPU: every check runs on the CPU (so the script is
exercised end to end) and each CUDA part is reported as skipped, with the reason, its CPU figures kept
under ``dry_run``. Nothing here is a test, and no test depends on it.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda:0] [--images 64] [--imgsz 320]
        [--out gpu_check.json]
    .venv/bin/python benchmarks/gpu_check.py --device cpu --images 16 --imgsz 160   # the dry run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.offline import apply_settings, configure_environment  # noqa: E402

CHECKPOINT = REPO / "tests" / "fixtures" / "strong.pt"
HEADLINE = ("mAP50", "mAP50_95", "precision", "recall")


class Context:
    """What the checks share: the device asked for, the scratch folder, the data, the .pt's numbers."""

    def __init__(self, device: str, root: Path, images: int, imgsz: int) -> None:
        self.device, self.root, self.imgsz = device, root, imgsz
        self.dry_run = device == "cpu"
        self.cuda_problem: str | None = None
        from tests.fixtures.synth import make_dataset

        self.data = make_dataset(root / "data", n_train=images, n_val=images, seed=26)
        self.pt_result: dict[str, Any] | None = None

    def evaluate(self, model: Path, device: str) -> tuple[dict[str, Any], float]:
        from evaluation.evaluate import evaluate
        from vocab.contract.params import EvalSpec

        spec = EvalSpec(model_path=str(model), dataset_path=str(self.data), model_name=model.stem,
                        imgsz=self.imgsz, batch=16)
        work = Path(tempfile.mkdtemp(dir=self.root))
        t0 = time.perf_counter()
        result = evaluate(spec, work / "job", device=device, predictions_path=work / "predictions.json",
                          evidence_path=work / "evidence.npz", analysis_dir=work)
        return result, time.perf_counter() - t0


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result.get(k) for k in HEADLINE}


def check_environment(ctx: Context) -> dict[str, Any]:
    import onnxruntime
    import torch
    import ultralytics

    from daemon.jobs.gpu_check import cpu_fallback_reason

    cuda = torch.cuda.is_available()
    out: dict[str, Any] = {
        "python": platform.python_version(), "torch": str(torch.__version__), "torch_cuda_build": torch.version.cuda,
        "cuda_available": cuda, "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "ultralytics": str(ultralytics.__version__), "onnxruntime": str(onnxruntime.__version__),
        "onnxruntime_providers": onnxruntime.get_available_providers(),
    }
    try:
        import ray

        out["ray"] = str(ray.__version__)
    except ImportError:
        out["ray"] = None
    if not ctx.dry_run and not cuda:
        ctx.cuda_problem = f"torch.cuda.is_available() is False: {cpu_fallback_reason()}"
        out["problem"] = ctx.cuda_problem
    return out


def check_eval_vs_bare(ctx: Context) -> dict[str, Any]:
    from ultralytics import YOLO

    from evaluation.datasets import load_dataset

    sanitised = load_dataset(ctx.data).write_sanitised(ctx.root / "bare")
    ctx.evaluate(CHECKPOINT, ctx.device)  # warm-up of both sides (first CUDA context, kernels)
    t0 = time.perf_counter()
    bare = YOLO(str(CHECKPOINT)).val(data=str(sanitised), imgsz=ctx.imgsz, batch=16, device=ctx.device, plots=False,
                                     verbose=False, save_dir=str(ctx.root / "bare-val"))
    bare_s = time.perf_counter() - t0
    ours, ours_s = ctx.evaluate(CHECKPOINT, ctx.device)
    ctx.pt_result = ours
    bare_numbers = {"mAP50": float(bare.box.map50), "mAP50_95": float(bare.box.map), "precision": float(bare.box.mp),
                    "recall": float(bare.box.mr)}
    same = all(abs((ours[k] or 0.0) - bare_numbers[k]) < 1e-9 for k in HEADLINE)
    out = {"ours": headline(ours), "bare": bare_numbers, "equal": same, "ours_s": round(ours_s, 3),
           "bare_s": round(bare_s, 3), "ratio": round(ours_s / bare_s, 3), "device_kind": ours.get("device_kind"),
           "inference_ms": ours.get("inference_ms")}
    if not same:
        raise AssertionError(f"our numbers differ from the bare val's: {out}")
    return out


def check_train_epoch(ctx: Context) -> dict[str, Any]:
    from evaluation.training import train

    t0 = time.perf_counter()
    result = train({"task": "detection", "base": str(CHECKPOINT), "dataset_path": str(ctx.data), "epochs": 1,
                    "batch": 16, "imgsz": ctx.imgsz, "lr0": 0.001, "patience": 10, "device": ctx.device,
                    "work_dir": str(ctx.root / "train")}, lambda value, detail=None: None)
    return {"seconds": round(time.perf_counter() - t0, 3), "checkpoint_written": Path(result["checkpoint"]).is_file(),
            "metrics": {k: round(v, 5) for k, v in result["metrics"].items()}}


def check_onnx(ctx: Context) -> dict[str, Any]:
    import shutil

    from evaluation.training import export_onnx

    ckpt = ctx.root / "export" / "strong.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CHECKPOINT, ckpt)
    t0 = time.perf_counter()
    onnx = Path(export_onnx(ckpt, imgsz=ctx.imgsz)["onnx"])
    export_s = time.perf_counter() - t0
    pt = ctx.pt_result or ctx.evaluate(CHECKPOINT, ctx.device)[0]
    result, seconds = ctx.evaluate(onnx, ctx.device)
    deltas = {k: None if result.get(k) is None or pt.get(k) is None else round(result[k] - pt[k], 6) for k in HEADLINE}
    classes = {c: round((result["per_class"].get(c) or 0.0) - (v or 0.0), 6) for c, v in pt["per_class"].items()}
    out = {"provider": result.get("provider"), "device": result.get("device"), "export_s": round(export_s, 3),
           "eval_s": round(seconds, 3), "onnx": headline(result), "pt": headline(pt), "delta": deltas,
           "max_class_ap50_delta": max((abs(v) for v in classes.values()), default=None)}
    if not ctx.dry_run and result.get("provider") != "CUDAExecutionProvider":
        raise AssertionError(f"the export ran on {result.get('provider')}, not onnxruntime's CUDA provider: {out}")
    return out


def check_ray_actor(ctx: Context) -> dict[str, Any]:
    import ray

    from daemon.jobs.ray_actor import TaskActor
    from vocab.contract.params import EvalSpec, EvalTask

    gpus = 0 if ctx.dry_run else 1
    t0 = time.perf_counter()
    ray.init(num_cpus=2, num_gpus=gpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actor = ray.remote(num_gpus=gpus, num_cpus=1, max_concurrency=2)(TaskActor).remote(ctx.device, 1)
        info = ray.get(actor.info.remote(), timeout=600)
        started_s = time.perf_counter() - t0
        spec = EvalSpec(model_path=str(CHECKPOINT), dataset_path=str(ctx.data), model_name="ray", imgsz=ctx.imgsz,
                        batch=16)
        work = ctx.root / "ray"
        task = EvalTask(spec=spec, device=ctx.device, work_dir=str(work / "work"),
                        predictions_path=str(work / "predictions.json"), evidence_path=str(work / "evidence.npz"))
        t1 = time.perf_counter()
        msg = ray.get(actor.run.remote("eval", task.stored(), {}), timeout=600)
        if msg["type"] != "result":
            raise AssertionError(f"the actor's evaluation failed: {msg.get('error_type')}: {msg.get('detail')}")
        out = {"gpu_ids": info["gpu_ids"], "device": info.get("device"), "device_kind": info.get("device_kind"),
               "torch_threads": info.get("torch_threads"), "node": info.get("node"), "start_s": round(started_s, 3),
               "eval_s": round(time.perf_counter() - t1, 3), "numbers": headline(msg["result"]),
               "equal_to_local": ctx.pt_result is None or headline(msg["result"]) == headline(ctx.pt_result)}
        if not ctx.dry_run and not (info["gpu_ids"] and str(info.get("device_kind", "")).startswith("cuda")):
            raise AssertionError(f"the actor does not hold the GPU: {out}")
        return out
    finally:
        ray.shutdown()


CHECKS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "environment": check_environment, "eval_vs_bare": check_eval_vs_bare, "train_epoch": check_train_epoch,
    "onnx": check_onnx, "ray_actor": check_ray_actor,
}
CUDA_PARTS = {"eval_vs_bare": "evaluation on the GPU", "train_epoch": "training on the GPU",
              "onnx": "onnxruntime's CUDA execution provider", "ray_actor": "a Ray actor holding the GPU"}


def run_check(name: str, ctx: Context) -> dict[str, Any]:
    """One check's report entry (see module contract)."""
    if name in CUDA_PARTS and ctx.cuda_problem:
        return {"status": "skipped", "reason": f"{CUDA_PARTS[name]} not checked: {ctx.cuda_problem}"}
    t0 = time.perf_counter()
    try:
        figures = CHECKS[name](ctx)
    except Exception as exc:  # noqa: BLE001 - reported, and the other checks still run
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                "seconds": round(time.perf_counter() - t0, 3)}
    seconds = round(time.perf_counter() - t0, 3)
    if name in CUDA_PARTS and ctx.dry_run:
        return {"status": "skipped", "reason": f"--device cpu (dry run): {CUDA_PARTS[name]} not checked; the same "
                "steps ran on the CPU", "seconds": seconds, "dry_run": figures}
    return {"status": "ok", "seconds": seconds, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda:0", help="cuda:N, or cpu for a dry run")
    parser.add_argument("--images", type=int, default=64, help="synthetic images in each of train and val")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(tmp)
        configure_environment(root / "state")
        import ultralytics  # noqa: F401 - after configure_environment: offline, quiet

        apply_settings(root / "state")
        ctx = Context(args.device, root, args.images, args.imgsz)
        checks = {}
        for name in CHECKS:
            checks[name] = run_check(name, ctx)
            print(f"{name}: {checks[name]['status']} ({checks[name].get('seconds', 0)} s)", flush=True)
    report = {"device": args.device, "dry_run": ctx.dry_run, "images": args.images, "imgsz": args.imgsz,
              "checks": checks, "total_s": round(time.perf_counter() - started, 1),
              "ok": all(c["status"] != "failed" for c in checks.values())}
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"report written to {args.out} ({report['total_s']} s); "
          f"{'no check failed' if report['ok'] else 'some checks FAILED'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
