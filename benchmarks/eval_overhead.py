"""Wall time of our evaluate() against a bare ``YOLO(ckpt).val()`` with the same arguments.

Both sides include loading the checkpoint and the whole validation pass; ours
also loads and checks the dataset, computes size recall, writes the
predictions artifact and the evidence file, and hashes checkpoint and dataset.
One warm-up of each, then ``--rounds`` rounds, alternating the order within
each round (ABBA) so drift hits both sides alike. Runs offline: the
environment is configured before ultralytics is imported.

    .venv/bin/python benchmarks/eval_overhead.py [--rounds 11] [--n-val 48] [--imgsz 192] [--batch 16]

Target: median(ours) / median(bare) <= 1.05. Wall times on a shared machine are noisy: the
per-round (paired) ratio, the ratio of minima and the process CPU time (all threads) are
printed as well.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.offline import apply_settings, configure_environment  # noqa: E402

TARGET = 1.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "tests" / "fixtures" / "strong.pt")
    parser.add_argument("--data", type=Path, help="dataset YAML (default: a synthetic one built in a tmp dir)")
    parser.add_argument("--n-val", type=int, default=48, help="images in the synthetic val split")
    parser.add_argument("--imgsz", type=int, default=192)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--no-artifacts", action="store_true",
                        help="do not write the predictions artifact and evidence file (ours)")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5")

    tmp = Path(tempfile.mkdtemp(prefix="eval-overhead-"))
    try:
        state = tmp / "state"
        configure_environment(state)
        from ultralytics import YOLO  # after configure_environment

        apply_settings(state)
        from evaluation.datasets import load_dataset
        from evaluation.evaluate import evaluate
        from vocab.contract.params import EvalSpec

        if args.data is None:
            from tests.fixtures.synth import make_dataset

            data_yaml = make_dataset(tmp / "data", n_val=args.n_val, seed=0)
        else:
            data_yaml = args.data.resolve()
        # The bare side gets the same sanitised YAML evaluate() hands to ultralytics.
        sanitised = load_dataset(data_yaml).write_sanitised(tmp / "bare-yaml")
        ckpt = args.checkpoint.resolve()
        counter = iter(range(10**6))

        def bare() -> tuple[float, float]:
            out = tmp / f"bare-{next(counter)}"
            t0, c0 = time.perf_counter(), time.process_time()
            YOLO(str(ckpt)).val(
                data=str(sanitised), imgsz=args.imgsz, batch=args.batch, device="cpu", plots=False,
                verbose=False, save_dir=str(out),
            )
            return time.perf_counter() - t0, time.process_time() - c0

        def ours() -> tuple[float, float]:
            work = tmp / f"ours-{next(counter)}"
            work.mkdir()
            spec = EvalSpec(model_path=str(ckpt), dataset_path=str(data_yaml), model_name=ckpt.stem,
                            imgsz=args.imgsz, batch=args.batch)
            t0, c0 = time.perf_counter(), time.process_time()
            evaluate(
                spec, work / "job", device="cpu",
                predictions_path=None if args.no_artifacts else work / "predictions.json",
                evidence_path=None if args.no_artifacts else work / "evidence.npz",
            )
            return time.perf_counter() - t0, time.process_time() - c0

        def timed(fn) -> tuple[float, float]:
            gc.collect()
            return fn()

        import torch
        import ultralytics

        print(f"ultralytics {ultralytics.__version__}, torch {torch.__version__} "
              f"({torch.get_num_threads()} threads), {platform.processor() or platform.machine()}")
        print(f"checkpoint {ckpt.name}, data {data_yaml}, imgsz {args.imgsz}, batch {args.batch}, device cpu, "
              f"artifacts {'off' if args.no_artifacts else 'on'}")
        print(f"warm-up: bare {timed(bare)[0]:.3f} s, ours {timed(ours)[0]:.3f} s")
        t_bare: list[float] = []
        t_ours: list[float] = []
        c_bare: list[float] = []
        c_ours: list[float] = []
        for i in range(args.rounds):
            order = (bare, ours) if i % 2 == 0 else (ours, bare)
            for fn in order:
                wall, cpu = timed(fn)
                (t_bare if fn is bare else t_ours).append(wall)
                (c_bare if fn is bare else c_ours).append(cpu)
            print(f"round {i + 1}: bare {t_bare[-1]:.3f} s, ours {t_ours[-1]:.3f} s   "
                  f"(process CPU: bare {c_bare[-1]:.3f} s, ours {c_ours[-1]:.3f} s)")
        m_bare, m_ours = statistics.median(t_bare), statistics.median(t_ours)
        ratio = m_ours / m_bare
        print(f"median bare {m_bare:.3f} s  (min {min(t_bare):.3f})")
        print(f"median ours {m_ours:.3f} s  (min {min(t_ours):.3f})")
        paired = statistics.median(o / b for o, b in zip(t_ours, t_bare))
        print(f"ratio ours/bare {ratio:.3f}  (median of per-round ratios {paired:.3f}; "
              f"ratio of minima {min(t_ours) / min(t_bare):.3f})")
        print(f"process CPU time (all threads; less sensitive to other load): median bare "
              f"{statistics.median(c_bare):.3f} s, ours {statistics.median(c_ours):.3f} s, "
              f"ratio {statistics.median(c_ours) / statistics.median(c_bare):.3f}")
        print(f"target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
