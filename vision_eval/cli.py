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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from store.export import CSV_FIELDS, to_csv
from vision_eval.api import DEFAULT_URL, ApiError, Unreachable, body
from vision_eval.client import Client
from vision_eval.progress import ProgressBar
from vision_eval.render import (
    render_cancelled,
    render_compare,
    render_decision,
    render_eval,
    render_history,
    render_jobs,
    render_leaderboard,
    render_model,
    render_models,
    render_train,
)
from vocab.errors import VisionEvalError
from vocab.paths import DEFAULT_MODELS_ROOT
from vocab.terms import DEFAULT_BATCH, DEFAULT_IMGSZ, JOB_KINDS, JOB_STATUSES, SPLITS
from vocab.version import version

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
LOCAL_DEFAULTS = {"imgsz": DEFAULT_IMGSZ, "batch": DEFAULT_BATCH, "device": "auto",
                  "models_root": str(DEFAULT_MODELS_ROOT)}


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
    ev.add_argument("dataset", help="path to an ultralytics dataset YAML")
    ev.add_argument("--local", action="store_true", help="evaluate in this process, without a daemon")
    ev.add_argument("--imgsz", type=int,
                    help=f"image size (default: the daemon's [eval] imgsz; {DEFAULT_IMGSZ} with --local)")
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
    cmp.add_argument("dataset")
    cmp.add_argument("--imgsz", type=int)
    cmp.add_argument("--batch", type=int)
    cmp.add_argument("--weights", help="custom scoring weights as JSON")
    cmp.add_argument("--resamples", type=int, help="bootstrap resamples, 0 for none (default: the daemon's)")
    cmp.add_argument("--seed", type=int, help="bootstrap seed (default: the daemon's)")
    cmp.add_argument("--split", choices=SPLITS, help="dataset split (default: the daemon's [eval] split)")
    cmp.add_argument("--no-wait", action="store_true")

    lb = command("leaderboard", "models ranked by their best score")
    lb.add_argument("--dataset", help="only evaluations on this dataset YAML")
    lb.add_argument("--limit", type=int)
    lb.add_argument("--weights", help="rank by these weights, a JSON object (default: the default weights)")
    lb.add_argument("--all-content", action="store_true",
                    help="also results of a dataset's earlier contents (marked), not only its current one")
    lb.add_argument("--split", choices=SPLITS, help="rank evaluations of this split (default val)")
    lb.add_argument("--csv", action="store_true", help="print CSV (for spreadsheets)")

    hist = command("history", "every evaluation of one model, newest first")
    hist.add_argument("model")
    hist.add_argument("--limit", type=int)
    hist.add_argument("--weights", help="score every row by these weights, a JSON object")
    hist.add_argument("--split", choices=SPLITS, help="only evaluations of this split")
    hist.add_argument("--csv", action="store_true", help="print CSV (for spreadsheets)")

    tr = command("train", "train a new version of a model")
    tr.add_argument("model", help="model name: the new checkpoint becomes <models root>/<model>/v<n>.pt")
    tr.add_argument("dataset")
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

    rollback = command("rollback", "restore the checkpoint current.pt held before the last promotion")
    rollback.add_argument("name")
    rollback.add_argument("--reason")
    return parser


# --------------------------------------------------------------------------- entry point


class Exit(Exception):
    """Stop with this exit status, after printing ``message`` on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def connect(args: argparse.Namespace) -> Client:
    """The client for --url/--token, else the --config file's server, else the environment."""
    url, token = args.url, args.token
    config_token = None
    if args.config is not None:
        from daemon.app.config import load_config

        server = load_config(args.config).server
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(server.host, server.host)
        url = url or f"http://{f'[{host}]' if ':' in host else host}:{server.port}"
        config_token = server.auth_token or None
    url = url or os.environ.get("VISION_EVAL_URL") or DEFAULT_URL
    token = token or os.environ.get("VISION_EVAL_TOKEN") or config_token
    return Client(url, token)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "eval" and args.local:
            from vision_eval.local_eval import run_local_eval

            for key, value in LOCAL_DEFAULTS.items():
                if getattr(args, key) is None:
                    setattr(args, key, value)
            return run_local_eval(args)
        return COMMANDS[args.command](connect(args), args)
    except VisionEvalError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except json.JSONDecodeError as exc:  # eval --local's --weights
        print(f"error: --weights is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        if exc.status < 500:
            print(f"error: {exc.detail} (HTTP {exc.status})", file=sys.stderr)
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


# --------------------------------------------------------------------------- commands


def _abs(raw: str) -> str:
    """A client-side path made absolute (the daemon resolves relative paths against its own cwd)."""
    return str(Path(raw).expanduser().absolute())


def _model(raw: str) -> str:
    from evaluation.model_resolution import looks_like_path

    return _abs(raw) if looks_like_path(raw) else raw


def _json_arg(raw: str | None, option: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Exit(EXIT_USAGE, f"error: {option} is not valid JSON: {exc}") from None


def cmd_eval(client: Client, args: argparse.Namespace) -> int:
    for option in ("device", "models_root"):
        if getattr(args, option) is not None:
            raise Exit(EXIT_USAGE, f"error: --{option.replace('_', '-')} applies only to eval --local")
    if args.predictions and args.no_wait:
        raise Exit(EXIT_USAGE, "error: --predictions needs the finished job: leave out --no-wait")
    job = client.eval(_model(args.model), _abs(args.dataset), imgsz=args.imgsz, batch_size=args.batch,
                      weights=_json_arg(args.weights, "--weights"), allow_class_mismatch=args.allow_class_mismatch,
                      auto_promote=args.auto_promote, split=args.split)
    code = submitted(client, args, job, render_eval)
    if code == EXIT_OK and args.predictions:
        predictions = client.predictions(job["job_id"])
        Path(args.predictions).write_text(json.dumps(predictions), encoding="utf-8")
        print(f"predictions written to {args.predictions}", file=sys.stderr)
    return code


def cmd_compare(client: Client, args: argparse.Namespace) -> int:
    job = client.compare(_model(args.model_a), _model(args.model_b), _abs(args.dataset), imgsz=args.imgsz,
                         batch_size=args.batch, weights=_json_arg(args.weights, "--weights"),
                         bootstrap_resamples=args.resamples, bootstrap_seed=args.seed, split=args.split)
    return submitted(client, args, job, render_compare)


def cmd_train(client: Client, args: argparse.Namespace) -> int:
    config = body(epochs=args.epochs, batch_size=args.batch, imgsz=args.imgsz,
                  learning_rate=args.learning_rate, patience=args.patience)
    job = client.train(args.model, _abs(args.dataset), config=config,
                       base_model=_model(args.base_model) if args.base_model else None, auto_eval=args.auto_eval,
                       auto_promote=args.auto_promote, eval_weights=_json_arg(args.eval_weights, "--eval-weights"),
                       split=args.split)
    return submitted(client, args, job, render_train)


def cmd_leaderboard(client: Client, args: argparse.Namespace) -> int:
    dataset = _abs(args.dataset) if args.dataset else None
    _json_arg(args.weights, "--weights")
    rows = client.leaderboard(dataset=dataset, limit=args.limit, split=args.split, weights=args.weights,
                              content="all" if args.all_content else None)
    return output(args, rows, _csv_or(args, "leaderboard", render_leaderboard))


def cmd_history(client: Client, args: argparse.Namespace) -> int:
    _json_arg(args.weights, "--weights")
    rows = client.history(args.model, limit=args.limit, split=args.split, weights=args.weights)
    return output(args, rows, _csv_or(args, "history", render_history))


def _csv_or(args: argparse.Namespace, kind: str, render: Callable[[Any], str]) -> Callable[[Any], str]:
    """``render``, or the CSV of the same rows (the HTTP route's columns) with --csv."""
    if not args.csv:
        return render
    return lambda rows: to_csv(rows, CSV_FIELDS[kind]).rstrip("\r\n")


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    reply = client.jobs(status=args.status, kind=args.kind, limit=args.limit)
    return output(args, reply, render_jobs)


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    return output(args, client.cancel(args.job_id), render_cancelled)


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    if args.name:
        return output(args, client.model(args.name), render_model)
    return output(args, client.models(), render_models)


def cmd_promote(client: Client, args: argparse.Namespace) -> int:
    decision = client.promote(args.name, args.version, reason=args.reason)
    return output(args, decision, lambda d: render_decision(args.name, d))


def cmd_rollback(client: Client, args: argparse.Namespace) -> int:
    decision = client.rollback(args.name, reason=args.reason)
    return output(args, decision, lambda d: render_decision(args.name, d))


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "eval": cmd_eval, "compare": cmd_compare, "train": cmd_train, "leaderboard": cmd_leaderboard,
    "history": cmd_history, "jobs": cmd_jobs, "cancel": cmd_cancel, "models": cmd_models,
    "promote": cmd_promote, "rollback": cmd_rollback,
}


def output(args: argparse.Namespace, value: Any, render: Callable[[Any], str]) -> int:
    print(json.dumps(value, indent=2) if args.json else render(value))
    return EXIT_OK


def submitted(client: Client, args: argparse.Namespace, job: dict[str, Any],
              render: Callable[[dict[str, Any]], str]) -> int:
    """Wait for a just-submitted job (unless --no-wait) and print it; the exit status of its outcome."""
    if args.no_wait:
        return output(args, job, lambda j: f"{j['kind']} job {j['job_id']} {j['status']}\n"
                                          f"follow it with: vision-eval jobs; cancel: vision-eval cancel {j['job_id']}")
    job = wait(client, job)
    if args.json:
        print(json.dumps(job, indent=2))
    elif job["status"] == "completed":
        print(render(job["result"]))
    if job["status"] != "completed":
        print(f"error: {job['kind']} job {job['job_id']} {job['status']}: {job.get('error') or 'no error given'}",
              file=sys.stderr)
        return EXIT_JOB_FAILED
    return EXIT_OK


def wait(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job with a progress bar on stderr (redrawn only when something changed)."""
    bar = ProgressBar(f"{job['kind']} {job['job_id']}")
    shown: list[Any] = [None]

    def update(j: dict[str, Any]) -> None:
        state = (j["status"], round(j.get("progress") or 0.0, 3))
        if state != shown[0]:
            shown[0] = state
            bar.label = f"{j['kind']} {j['job_id']} {j['status']:<9}"
            bar(j.get("progress") or 0.0)

    try:
        return client.wait(job["job_id"], update)
    except KeyboardInterrupt:
        raise Exit(130, f"stopped waiting; job {job['job_id']} goes on in the daemon "
                        f"(vision-eval cancel {job['job_id']} stops it)") from None
    finally:
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
