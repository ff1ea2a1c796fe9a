"""``vision-eval eval --local`` against ``yolo val`` as the dataset grows: wall time and peak RSS (issue 26).

Both sides are whole processes on the same checkpoint, dataset YAML, imgsz, batch and device
(``yolo val ... plots=False``: our evaluation draws no plots either). Each size runs ``--pairs``
pairs, alternating which side goes first. Peak RSS is the child's own ``ru_maxrss`` (``os.wait4``;
this process stays small and imports no torch, so the children do not inherit its peak). The
synthetic datasets (``tests.fixtures.synth``: 256x192, 192x256 and 224x224 PNGs, 0-3 boxes each)
are generated into ``--data-root`` on first use and kept there for later runs (never committed).

    .venv/bin/python benchmarks/local_eval_scale.py [--images 2000 10000] [--pairs 3] [--imgsz 320]
        [--batch 8] [--data-root /tmp/vision-eval-scale]

Targets: wall(ours) / wall(yolo) <= 1.05 and peak RSS(ours) / peak RSS(yolo) <= 1.15, medians of
the per-pair ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.synth import make_dataset  # noqa: E402

STRONG_PT = ROOT / "tests" / "fixtures" / "strong.pt"
WALL_TARGET, RSS_TARGET = 1.05, 1.15


def dataset(root: Path, images: int) -> Path:
    """The synthetic dataset of ``images`` val images under ``root`` (made once)."""
    folder = root / f"synth-{images}"
    yaml_path = folder / "data.yaml"
    if not yaml_path.is_file():
        t0 = time.perf_counter()
        make_dataset(folder, n_val=images, seed=26)
        print(f"made {images} images in {time.perf_counter() - t0:.1f} s", flush=True)
    return yaml_path


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process; fails loudly if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--checkpoint", type=Path, default=STRONG_PT)
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "vision-eval-scale")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    ckpt = args.checkpoint.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "XDG_STATE_HOME": str(work / "state"), "XDG_CACHE_HOME": str(work / "cache"),
               "YOLO_CONFIG_DIR": str(work / "yolo-config"), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False",
               "PYTHONPATH": str(ROOT)}
        (work / "yolo-config" / "Ultralytics").mkdir(parents=True)
        for images in args.images:
            data = dataset(args.data_root, images)
            ours_cmd = [str(bindir / "vision-eval"), "eval", str(ckpt), str(data), "--local", "--device", "cpu",
                        "--imgsz", str(args.imgsz), "--batch", str(args.batch)]
            yolo_cmd = [str(bindir / "yolo"), "val", f"model={ckpt}", f"data={data}", f"imgsz={args.imgsz}",
                        f"batch={args.batch}", "device=cpu", "plots=False", f"project={work / 'runs'}",
                        "name=val", "exist_ok=True"]
            # one untimed run of each: the label cache ultralytics writes beside the labels, the font copy
            run(yolo_cmd, env, work)
            run(ours_cmd, env, work)
            walls: list[tuple[float, float]] = []
            rsss: list[tuple[float, float]] = []
            for i in range(args.pairs):
                first, second = (ours_cmd, yolo_cmd) if i % 2 == 0 else (yolo_cmd, ours_cmd)
                a = run(first, env, work)
                b = run(second, env, work)
                ours, yolo = (a, b) if first is ours_cmd else (b, a)
                walls.append((ours[0], yolo[0]))
                rsss.append((ours[1], yolo[1]))
                print(f"{images} images, pair {i + 1}: ours {ours[0]:.1f} s {ours[1]:.0f} MiB, yolo val "
                      f"{yolo[0]:.1f} s {yolo[1]:.0f} MiB; wall {ours[0] / yolo[0]:.3f}, RSS {ours[1] / yolo[1]:.3f} "
                      f"(load average {os.getloadavg()[0]:.1f})", flush=True)
            wall_ratios = sorted(o / y for o, y in walls)
            rss_ratios = sorted(o / y for o, y in rsss)
            wall = statistics.median(wall_ratios)
            rss = statistics.median(rss_ratios)
            print(f"== {images} images, imgsz {args.imgsz}, batch {args.batch}, {args.pairs} pairs: "
                  f"wall median ours {statistics.median(o for o, _ in walls):.1f} s vs yolo "
                  f"{statistics.median(y for _, y in walls):.1f} s, ratio {wall:.3f} (spread {wall_ratios[0]:.3f}-"
                  f"{wall_ratios[-1]:.3f}; target <= {WALL_TARGET}: {'met' if wall <= WALL_TARGET else 'NOT met'}); "
                  f"peak RSS median ours {statistics.median(o for o, _ in rsss):.0f} MiB vs yolo "
                  f"{statistics.median(y for _, y in rsss):.0f} MiB, ratio {rss:.3f} (spread {rss_ratios[0]:.3f}-"
                  f"{rss_ratios[-1]:.3f}; target <= {RSS_TARGET}: {'met' if rss <= RSS_TARGET else 'NOT met'})",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
