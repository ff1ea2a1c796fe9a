"""``vision-eval``: the command-line client (and ``eval --local``, which needs no daemon)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from daemon.paths import DEFAULT_MODELS_ROOT
from evaluation.errors import VisionEvalError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vision-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="evaluate a model on a dataset")
    ev.add_argument("model", help="model name (resolved under --models-root) or path to a .pt file")
    ev.add_argument("dataset", help="path to an ultralytics dataset YAML")
    ev.add_argument("--local", action="store_true", help="evaluate in this process, without a daemon")
    ev.add_argument("--imgsz", type=int, default=640)
    ev.add_argument("--batch", type=int, default=16)
    ev.add_argument("--device", default="auto", help="auto (first CUDA device, else CPU), cpu, cuda:0, ...")
    ev.add_argument("--weights", help='custom scoring weights as JSON, e.g. \'{"speed": 0.4}\'')
    ev.add_argument("--predictions", metavar="FILE", help="also write the predictions artifact to FILE")
    ev.add_argument("--allow-class-mismatch", action="store_true",
                    help="evaluate even when the checkpoint's class names differ from the dataset's")
    ev.add_argument("--models-root", default=str(DEFAULT_MODELS_ROOT))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "eval" and args.local:
            from daemon.local_eval import run_local_eval

            return run_local_eval(args)
        print("error: only 'eval --local' is available in this build", file=sys.stderr)
        return 2
    except VisionEvalError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"error: --weights is not valid JSON: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
