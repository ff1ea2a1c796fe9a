"""``vision-eval``: the command-line client of vision-evald (and ``eval --local``, which needs no daemon).

Commands that submit a job (eval, compare, train) wait for it, with a
progress bar on stderr, unless given --no-wait. Output is a readable
summary, or the daemon's JSON with --json.

Exit status: 0 success; 1 the job failed or was cancelled; 2 a usage error
or an HTTP 4xx answer (the daemon's detail is printed); 3 the daemon is
unreachable or answered 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vision_eval.api import DEFAULT_URL, ApiError, Unreachable
from vision_eval.client import Client
from vision_eval.commands import COMMANDS, EXIT_UNREACHABLE, EXIT_USAGE, Context, Exit
from vision_eval.text_table import terminal_width
from vocab.errors import VisionEvalError
from vocab.paths import DEFAULT_MODELS_ROOT
from vocab.tasks import EVAL_IMGSZ_DEFAULT_DOC, TASK_INPUTS
from vocab.terms import DEFAULT_BATCH, JOB_KINDS, JOB_STATUSES, SPLITS
from vocab.version import version

LOCAL_DEFAULTS = {"batch": DEFAULT_BATCH, "device": "auto",
                  "models_root": str(DEFAULT_MODELS_ROOT)}
TASK_HELP = f"one of {', '.join(TASK_INPUTS)}"
DATASET_HELP = ("a dataset YAML, a folder holding one, an ImageFolder (classification: <split>/<class>/ images) or a "
                "COCO JSON file")


# --------------------------------------------------------------------------- arguments


def _global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """--url/--token/--config/--json, accepted before or after the command."""
    unset = argparse.SUPPRESS if in_subcommand else None
    parser.add_argument("--url", default=unset,
                        help=f"daemon URL (default: from --config, else $VISION_EVAL_URL, else {DEFAULT_URL})")
    parser.add_argument("--token", default=unset,
                        help="bearer token (default: $VISION_EVAL_TOKEN, else [server] auth_token of --config)")
    parser.add_argument("--config", type=Path, default=unset, metavar="FILE",
                        help="the daemon's config file: its [server] host, port and auth_token")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if in_subcommand else False,
                        help="print the daemon's JSON instead of tables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vision-eval", description=(__doc__ or "").replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    _global_options(parser, in_subcommand=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, in_subcommand=True)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    ev = command("eval", "evaluate a model on a dataset")
    ev.add_argument("model", help="model name (resolved under the models root) or path to a .pt or .onnx file")
    ev.add_argument("dataset", help=DATASET_HELP)
    ev.add_argument("--local", action="store_true", help="evaluate in this process, without a daemon")
    ev.add_argument("--imgsz", type=int,
                    help=f"image size (default: the daemon's settings; with --local {EVAL_IMGSZ_DEFAULT_DOC})")
    ev.add_argument("--batch", type=int,
                    help=f"batch size (default: the daemon's [eval] batch; {DEFAULT_BATCH} with --local)")
    ev.add_argument("--weights", help='custom scoring weights as JSON, e.g. \'{"speed": 0.4}\'')
    ev.add_argument("--predictions", metavar="FILE", help="also write the predictions artifact to FILE")
    ev.add_argument("--allow-class-mismatch", action="store_true",
                    help="evaluate even when the checkpoint's class names differ from the dataset's")
    ev.add_argument("--auto-promote", action="store_true", help="promote the model's current.pt if it wins")
    ev.add_argument("--split", choices=SPLITS, help="dataset split to evaluate (default: the daemon's [eval] split; "
                                                    "val with --local)")
    ev.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    ev.add_argument("--device", help="--local only: auto (first CUDA device, else CPU), cpu, cuda:0, ...")
    ev.add_argument("--models-root", help=f"--local only (default {LOCAL_DEFAULTS['models_root']})")

    cmp = command("compare", "compare two models on one dataset (paired bootstrap statistics)")
    cmp.add_argument("model_a")
    cmp.add_argument("model_b")
    cmp.add_argument("dataset", help=DATASET_HELP)
    cmp.add_argument("--imgsz", type=int)
    cmp.add_argument("--batch", type=int)
    cmp.add_argument("--weights", help="custom scoring weights as JSON")
    cmp.add_argument("--resamples", type=int, help="bootstrap resamples, 0 for none (default: the daemon's)")
    cmp.add_argument("--seed", type=int, help="bootstrap seed (default: the daemon's)")
    cmp.add_argument("--split", choices=SPLITS, help="dataset split (default: the daemon's [eval] split)")
    cmp.add_argument("--no-wait", action="store_true")

    lb = command("leaderboard", "models ranked by their best score")
    lb.add_argument("--dataset", help="only evaluations on this dataset (its path as evaluated)")
    lb.add_argument("--limit", type=int)
    lb.add_argument("--weights", help="rank by these weights, a JSON object (default: the default weights)")
    lb.add_argument("--all-content", action="store_true",
                    help="also results of a dataset's earlier contents (marked), not only its current one")
    lb.add_argument("--split", choices=SPLITS, help="rank evaluations of this split (default val)")
    lb.add_argument("--task", choices=TASK_INPUTS, metavar="TASK", help=f"only evaluations of this task ({TASK_HELP})")
    lb.add_argument("--csv", action="store_true", help="print CSV (for spreadsheets)")

    hist = command("history", "every evaluation of one model, newest first")
    hist.add_argument("model")
    hist.add_argument("--limit", type=int)
    hist.add_argument("--weights", help="score every row by these weights, a JSON object")
    hist.add_argument("--split", choices=SPLITS, help="only evaluations of this split")
    hist.add_argument("--task", choices=TASK_INPUTS, metavar="TASK", help=f"only evaluations of this task ({TASK_HELP})")
    hist.add_argument("--csv", action="store_true", help="print CSV (for spreadsheets)")

    tr = command("train", "train a new version of a model")
    tr.add_argument("model", help="model name: the new checkpoint becomes <models root>/<model>/v<n>.pt")
    tr.add_argument("dataset", help=DATASET_HELP)
    tr.add_argument("--task", choices=TASK_INPUTS, metavar="TASK",
                    help=f"what the model does ({TASK_HELP}; default: the daemon's, detection)")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch", type=int)
    tr.add_argument("--imgsz", type=int)
    tr.add_argument("--learning-rate", type=float)
    tr.add_argument("--patience", type=int)
    tr.add_argument("--base-model", help="checkpoint, model name or yolo*.yaml to start from "
                                         "(default: the model's current checkpoint, else yolov8n.yaml)")
    tr.add_argument("--auto-eval", action="store_true", help="evaluate the new version on the dataset")
    tr.add_argument("--auto-promote", action="store_true", help="evaluate, then promote it if it wins")
    tr.add_argument("--eval-weights", help="custom scoring weights (JSON) for the evaluation and promotion")
    tr.add_argument("--split", choices=SPLITS, help="dataset split the new version is evaluated on")
    tr.add_argument("--no-wait", action="store_true")

    jobs = command("jobs", "list jobs, newest first")
    jobs.add_argument("--status", choices=JOB_STATUSES)
    jobs.add_argument("--kind", choices=JOB_KINDS)
    jobs.add_argument("--limit", type=int)

    cancel = command("cancel", "cancel a queued or running job")
    cancel.add_argument("job_id")

    models = command("models", "list models, or show one: versions, evaluations, promotions")
    models.add_argument("name", nargs="?")

    promote = command("promote", "make v<VERSION>.pt the model's current.pt now (audited)")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason")
    promote.add_argument("--force", action="store_true",
                         help="promote a version not evaluated yet, or refused by the gates (needs --reason)")

    rollback = command("rollback", "restore the checkpoint current.pt held before the last promotion")
    rollback.add_argument("name")
    rollback.add_argument("--reason")
    return parser


# --------------------------------------------------------------------------- entry point


def connect(args: argparse.Namespace) -> tuple[Client, str | None]:
    """The client for --url/--token, else the --config file's server, else the environment; and where its
    URL came from, in words (None: --url)."""
    url, source, config_token = args.url, None, None
    if args.config is not None:
        from vocab.config import load_config  # only with --config: the daemon's own reading of its file

        server = load_config(args.config).server
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(server.host, server.host)
        if url is None:
            url, source = f"http://{f'[{host}]' if ':' in host else host}:{server.port}", f"from {args.config}"
        config_token = server.auth_token or None
    if url is None and os.environ.get("VISION_EVAL_URL"):
        url, source = os.environ["VISION_EVAL_URL"], "from $VISION_EVAL_URL"
    if url is None:
        url, source = DEFAULT_URL, "the default URL; name another with --url, $VISION_EVAL_URL or --config"
    token = args.token or os.environ.get("VISION_EVAL_TOKEN") or config_token
    return Client(url, token), source


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    where = None  # which daemon answered, for a "not found"
    try:
        if args.command == "eval" and args.local:
            from vision_eval.local_eval import run_local_eval

            for key, value in LOCAL_DEFAULTS.items():
                if getattr(args, key) is None:
                    setattr(args, key, value)
            return run_local_eval(args)
        client, source = connect(args)
        where = f"(asked vision-evald at {client.url}: {source})" if source else None
        return COMMANDS[args.command](Context(client, args, source, terminal_width()))
    except VisionEvalError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except json.JSONDecodeError as exc:  # eval --local's --weights
        print(f"error: --weights is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        if exc.status < 500:
            print(f"error: {exc.detail} (HTTP {exc.status})", file=sys.stderr)
            if exc.status == 404 and where is not None:
                print(where, file=sys.stderr)
            return EXIT_USAGE
        retry = f"; retry after {exc.retry_after} s" if exc.retry_after else ""
        print(f"error: the daemon answered HTTP {exc.status}: {exc.detail}{retry}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Unreachable as exc:
        print(f"error: cannot reach vision-evald at {exc.url}: {exc.reason}\n"
              "Is the daemon running? Point to it with --url, $VISION_EVAL_URL or --config.", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Exit as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
