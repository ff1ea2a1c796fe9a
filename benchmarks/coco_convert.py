"""Time to check and convert a COCO JSON detection dataset of 5,000 images (evaluation/coco_cache.py).

Writes a synthetic COCO export into a temporary folder (small PNGs, 1-4 boxes
each, category ids with gaps, Roboflow's placeholder category, a few crowd and
zero-area annotations, some images without objects), then times:

1. ``read_coco``: the submission's check (JSON, ids, boxes, every image's header);
2. the first ``load_dataset`` from a process without torch: check, conversion by
   ultralytics' ``convert_coco`` in a child process, then loading the converted
   layout (labels parsed);
3. the first ``load_dataset`` in a process that has imported ultralytics (a
   worker): the same, with the converter run in-process;
4. a second ``load_dataset``: the cache is reused (check and load only).

    .venv/bin/python benchmarks/coco_convert.py [--images 5000] [--size 64]

Baseline (same run): ``json.load`` of the same file, and a plain YOLO dataset
of the same images and boxes loaded with ``load_dataset``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.offline import configure_environment  # noqa: E402


def write_export(root: Path, n: int, size: int, seed: int = 0) -> Path:
    """A Roboflow-style COCO export: ``valid/_annotations.coco.json`` beside ``valid/*.png``; a YOLO copy
    of the same boxes under ``yolo/``."""
    rng = np.random.default_rng(seed)
    folder = root / "valid"
    folder.mkdir(parents=True)
    (root / "yolo" / "labels" / "val").mkdir(parents=True)
    (root / "yolo" / "images" / "val").mkdir(parents=True)
    ids = [1, 2, 5, 7]
    categories = [{"id": 0, "name": "bench", "supercategory": "none"}]
    categories += [{"id": c, "name": f"c{c}", "supercategory": "bench"} for c in ids]
    images, annotations = [], []
    for i in range(n):
        w, h = size, size * 3 // 4
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
        os.link(folder / f"{i:05d}.png", root / "yolo" / "images" / "val" / f"{i:05d}.png")
        images.append({"id": i, "file_name": f"{i:05d}.png", "width": w, "height": h})
        rows = []
        for _ in range(0 if i % 9 == 0 else int(rng.integers(1, 5))):
            bw, bh = int(rng.integers(4, w // 2)), int(rng.integers(4, h // 2))
            x, y, c = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh)), int(rng.integers(0, len(ids)))
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": ids[c],
                                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": int(i % 97 == 1)})
            if i % 97 != 1:
                rows.append(f"{c} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
        if i % 101 == 3:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "bbox": [1, 1, 0, 3],
                                "area": 0, "iscrowd": 0})
        (root / "yolo" / "labels" / "val" / f"{i:05d}.txt").write_text("".join(rows))
    (folder / "_annotations.coco.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    names = {i: f"c{c}" for i, c in enumerate(ids)}
    (root / "yolo" / "data.yaml").write_text(json.dumps({"train": "images/val", "val": "images/val",
                                                         "names": names}))
    return folder / "_annotations.coco.json"


def cpu() -> float:
    """CPU seconds of this process and of its finished children (the converter's child process)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn):  # noqa: ANN001, ANN201 - a tiny local helper
    """(fn(), 'wall s (CPU s)') - CPU time is the steadier figure on a shared machine."""
    t, c = time.perf_counter(), cpu()
    out = fn()
    return out, f"{time.perf_counter() - t:.2f} s wall ({cpu() - c:.2f} s CPU)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64, help="image width in pixels (height: 3/4 of it)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coco-bench-") as tmp:
        root = Path(tmp)
        configure_environment(root / "state")
        (json_path, t_write) = timed(lambda: write_export(root / "export", args.images, args.size))
        parsed, t_json = timed(lambda: json.loads(json_path.read_text()))
        print(f"synthetic export: {args.images} images, {len(parsed['annotations'])} annotations, "
              f"{json_path.stat().st_size / 1e6:.1f} MB JSON (written in {t_write})")
        from evaluation.coco_json import read_coco
        from evaluation.datasets import load_dataset

        coco, t_check = timed(lambda: read_coco(json_path))
        print(f"json.loads (baseline): {t_json}\nread_coco (the submission's check): {t_check} "
              f"(skipped {coco.skipped}, placeholder {[c['name'] for c in coco.placeholders]})")
        yolo, t_yolo = timed(lambda: load_dataset(root / "export" / "yolo" / "data.yaml"))
        print(f"load_dataset of the same data as YOLO files (baseline): {t_yolo}")
        code = ("import sys\nfrom pathlib import Path\nfrom evaluation.datasets import load_dataset\n"
                f"ds = load_dataset({str(json_path)!r}, cache_root=Path({tmp!r}) / 'child')\n"
                "print(len(ds.images), 'torch' in sys.modules)\n")
        out, t_child = timed(lambda: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                    check=True, cwd=REPO))
        count, torch_loaded = out.stdout.split()
        print(f"first load_dataset in a fresh torch-free process (converter in a child): {t_child}, "
              f"interpreter start included ({count} images; torch imported by the caller: {torch_loaded})")
        _, t_import = timed(lambda: __import__("ultralytics"))  # a worker has it: the converter runs in-process
        ds, t_first = timed(lambda: load_dataset(json_path, cache_root=root / "worker"))
        _, t_again = timed(lambda: load_dataset(json_path, cache_root=root / "worker"))
        print(f"import ultralytics: {t_import}\nfirst load_dataset in a worker (converter in-process): {t_first}"
              f"\nsecond load_dataset (cache reused: check and load only): {t_again}")
        pairs = [(a, b) for p, q in zip(ds.images, yolo.images) for a, b in zip(ds.labels[p], yolo.labels[q])]
        counts = [len(ds.labels[p]) for p in ds.images] == [len(yolo.labels[q]) for q in yolo.images]
        worst = max(max(abs(a.cx - b.cx), abs(a.cy - b.cy), abs(a.w - b.w), abs(a.h - b.h)) for a, b in pairs)
        print(f"converted labels against the YOLO copy: same boxes per image {counts}, same classes "
              f"{all(a.cls == b.cls for a, b in pairs)}, largest coordinate difference {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
