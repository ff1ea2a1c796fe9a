"""Evaluation time of an ONNX export (onnxruntime) against its ``.pt`` (torch), same data, same machine.

The checkpoint is exported twice in a tmp dir, offline (``simplify=False``): a
dynamic export (evaluated like the ``.pt``, rectangular batches of
``--batch``) and a static one (square input, batch 1, as its metadata fixes).
Each round runs our ``evaluate()`` on all three in a rotating order, so
drift hits every side alike; one warm-up of each comes first. The ``.pt`` is
the baseline: every ratio is against its median in the same run. Wall time,
process CPU time (all threads) and the validator's per-image inference time
are printed, with each side's mAP50-95 (the dynamic export must match the
``.pt``).

    .venv/bin/python benchmarks/onnx_vs_pt.py [--rounds 5] [--n-val 48] [--imgsz 320] [--batch 16]
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.offline import apply_settings, configure_environment  # noqa: E402
from vocab.contract.params import EvalSpec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "tests" / "fixtures" / "strong.pt")
    parser.add_argument("--n-val", type=int, default=48, help="images in the synthetic val split")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")

    tmp = Path(tempfile.mkdtemp(prefix="onnx-vs-pt-"))
    try:
        state = tmp / "state"
        configure_environment(state)
        from evaluation.evaluate import evaluate  # imports ultralytics: after the environment
        from evaluation.training import export_onnx
        from tests.fixtures.synth import make_dataset

        apply_settings(state)
        data_yaml = make_dataset(tmp / "data", n_val=args.n_val, seed=0)
        models: dict[str, tuple[Path, int]] = {}
        for name, dynamic in (("dynamic", True), ("static", False)):
            folder = tmp / name
            folder.mkdir()
            pt = folder / "model.pt"
            shutil.copyfile(args.checkpoint, pt)
            t0 = time.perf_counter()
            onnx = Path(export_onnx(pt, imgsz=args.imgsz, dynamic=dynamic)["onnx"])
            print(f"export {name}: {time.perf_counter() - t0:.2f} s")
            models[f"onnx-{name}"] = (onnx, args.imgsz)
        models = {"pt": (args.checkpoint.resolve(), args.imgsz), **models}
        counter = iter(range(10**6))

        def run(key: str) -> tuple[float, float, dict[str, Any]]:
            path, imgsz = models[key]
            work = tmp / f"{key}-{next(counter)}"
            spec = EvalSpec(model_path=str(path), dataset_path=str(data_yaml), model_name=key, imgsz=imgsz,
                            batch=args.batch)
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            result = evaluate(spec, work, device="cpu", predictions_path=work / "p.json", evidence_path=work / "e.npz")
            return time.perf_counter() - t0, time.process_time() - c0, result

        import onnxruntime
        import torch
        import ultralytics

        print(f"ultralytics {ultralytics.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"onnxruntime {onnxruntime.__version__}, {platform.processor() or platform.machine()}")
        print(f"checkpoint {args.checkpoint.name}, {args.n_val} images, imgsz {args.imgsz}, batch {args.batch} "
              "(static export: batch 1), device cpu")
        for key in models:
            print(f"warm-up {key}: {run(key)[0]:.3f} s")
        keys = list(models)
        wall: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}
        infer: dict[str, list[float]] = {k: [] for k in keys}
        last: dict[str, dict[str, Any]] = {}
        for i in range(args.rounds):
            order = keys[i % len(keys):] + keys[:i % len(keys)]
            for key in order:
                w, c, result = run(key)
                wall[key].append(w)
                cpu[key].append(c)
                infer[key].append(result["inference_ms"])
                last[key] = result
            print(f"round {i + 1}: " + ", ".join(f"{k} {wall[k][-1]:.3f} s" for k in keys))
        base_wall, base_cpu = statistics.median(wall["pt"]), statistics.median(cpu["pt"])
        base_inf = statistics.median(infer["pt"])
        print(f"{'side':<14}{'wall s':>9}{'ratio':>8}{'CPU s':>9}{'ratio':>8}{'infer ms/img':>14}{'ratio':>8}"
              f"{'mAP50-95':>10}{'imgsz':>7}{'batch':>7}")
        for key in keys:
            mw, mc, mi = statistics.median(wall[key]), statistics.median(cpu[key]), statistics.median(infer[key])
            r = last[key]
            print(f"{key:<14}{mw:>9.3f}{mw / base_wall:>8.2f}{mc:>9.3f}{mc / base_cpu:>8.2f}{mi:>14.2f}"
                  f"{mi / base_inf:>8.2f}{r['mAP50_95']:>10.4f}{r['imgsz']:>7}{r['batch']:>7}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
