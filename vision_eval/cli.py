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

from daemon.paths import DEFAULT_MODELS_ROOT
from daemon.version import version
from store.export import CSV_FIELDS, to_csv
from vision_eval.api import DEFAULT_URL, ApiError, Unreachable, body
from vision_eval.client import Client
from vision_eval.progress import ProgressBar
from vision_eval.text_table import fmt, table
from vocab.errors import VisionEvalError
from vocab.terms import JOB_KINDS, JOB_STATUSES, SPLITS

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
LOCAL_DEFAULTS = {"imgsz": 640, "batch": 16, "device": "auto", "models_root": str(DEFAULT_MODELS_ROOT)}


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
    ev.add_argument("--imgsz", type=int, help="image size (default: the daemon's [eval] imgsz; 640 with --local)")
    ev.add_argument("--batch", type=int, help="batch size (default: the daemon's [eval] batch; 16 with --local)")
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
        from daemon.config import load_config

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
    from evaluation.models import looks_like_path

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


# --------------------------------------------------------------------------- rendering


def _version(v: Any) -> str:
    return f"v{v}" if v is not None else "-"


def render_leaderboard(rows: list[dict[str, Any]]) -> str:
    return table(
        ["RANK", "MODEL", "VERSION", "SCORE", "mAP50", "mAP50_95", "P", "R", "F1", "SMALL_R", "INF_MS", "DATASET",
         "EVALUATED"],
        [[r["rank"], r["model_name"], _version(r.get("version")), r["score"], r["mAP50"], r["mAP50_95"],
          r["precision"], r["recall"], r["f1"], r["small_object_recall"], fmt(r["inference_ms"], 1),
          r["dataset"] + (" (earlier content)" if r.get("current_content") is False else ""),
          r["timestamp"]] for r in rows],
        empty="no evaluations yet",
    )


def render_history(rows: list[dict[str, Any]]) -> str:
    return table(
        ["EVAL", "EVALUATED", "VERSION", "SCORE", "mAP50", "mAP50_95", "F1", "SMALL_R", "INF_MS", "IMGSZ", "TRIGGER",
         "JOB", "DATASET"],
        [[r["eval_id"], r["timestamp"], _version(r.get("version")), r["score"], r["mAP50"], r["mAP50_95"], r["f1"],
          r["small_object_recall"], fmt(r["inference_ms"], 1), r.get("imgsz"), r.get("trigger"), r.get("job_id"),
          r["dataset"]] for r in rows],
    )


def _subject(job: dict[str, Any]) -> str:
    """What a job was about, as far as the public job shows it (its result)."""
    result = job.get("result") or {}
    if "model_a" in result:
        return f"{result['model_a']} vs {result['model_b']}"
    if result.get("model_name"):
        return result["model_name"] + (f" v{result['version']}" if result.get("version") else "")
    return ""


def render_jobs(reply: dict[str, Any]) -> str:
    rows = []
    for j in reply["jobs"]:
        note = j.get("error") or _subject(j)
        rows.append([j["job_id"], j["kind"], j["status"], f"{(j.get('progress') or 0) * 100:.0f}%",
                     j["created_at"], j.get("completed_at"), note[:70]])
    return table(["JOB", "KIND", "STATUS", "PROGRESS", "CREATED", "FINISHED", "MODEL / ERROR"], rows,
                 empty="no jobs")


def render_cancelled(job: dict[str, Any]) -> str:
    if job["status"] == "running":
        return f"job {job['job_id']}: cancel requested; it stops shortly"
    return f"job {job['job_id']}: {job['status']}"


def render_models(listing: dict[str, Any]) -> str:
    rows = []
    for m in listing["models"]:
        latest = m.get("latest_evaluation") or {}
        rows.append([m["name"], ",".join(f"v{v}" for v in m["version_numbers"]) or "-",
                     "yes" if m["has_current"] else "no", m.get("size_mb"),
                     latest.get("score"), latest.get("timestamp"), latest.get("dataset")])
    return table(["MODEL", "VERSIONS", "CURRENT", "SIZE_MB", "LAST_SCORE", "LAST_EVALUATED", "DATASET"], rows,
                 empty="no models in the models folder")


def _sha(sha: Any) -> str:
    return sha[:12] if isinstance(sha, str) else "-"


def render_model(m: dict[str, Any]) -> str:
    current = m.get("current")
    if current is None:
        holds = "none"
    else:
        holds = f"{_version(current.get('version'))} (sha256 {_sha(current.get('sha256'))})"
        if current.get("version") is None:
            holds = f"sha256 {_sha(current.get('sha256'))} (no v<n>.pt has these bytes)"
    parts = [f"model    {m['name']}", f"folder   {m['path']}", f"current  {holds}", "",
             "versions:",
             table(["VERSION", "SIZE_MB", "SHA256", "CURRENT", "ONNX"],
                   [[_version(v["version"]), fmt(v.get("size_mb"), 1), _sha(v.get("sha256")),
                     "*" if current and v.get("sha256") == current.get("sha256") else "", v.get("onnx") or "-"]
                    for v in m["versions"]]),
             "", "evaluations (newest first):",
             table(["EVAL", "EVALUATED", "VERSION", "SCORE", "mAP50", "mAP50_95", "F1", "DATASET"],
                   [[e["eval_id"], e["timestamp"], _version(e.get("version")), e["score"], e["mAP50"], e["mAP50_95"],
                     e["f1"], e["dataset"]] for e in m.get("evaluations", [])]),
             "", "promotion decisions (newest first):",
             table(["ID", "WHEN", "DECISION", "BY", "VERSION", "NEW_SCORE", "OLD_SCORE", "REASON"],
                   [[p["id"], p["timestamp"], p["decision"], p["actor"], _version(p.get("version")),
                     p.get("new_score"), p.get("previous_score"), p["reason"]] for p in m.get("promotions", [])])]
    if m.get("skipped"):
        parts += ["", "skipped checkpoints:", table(["PATH", "SINCE", "REASON"],
                                                    [[s["path"], s["created_at"], s["reason"]] for s in m["skipped"]])]
    if m.get("checkpoints"):
        parts += ["", "checkpoints the watcher queued:",
                  table(["PATH", "SHA256", "STATE", "FAILURES", "NEXT_RETRY", "LAST_ERROR"],
                        [[c["path"], _sha(c.get("sha256")), c["state"], c.get("attempts"),
                          c.get("next_retry_at") or "-", c.get("last_error") or "-"] for c in m["checkpoints"]])]
    if m.get("waiting"):
        parts += ["", "waiting to settle:", table(["PATH", "WAITING_S", "WHY"],
                                                  [[w["path"], w["waiting_s"], w["reason"]] for w in m["waiting"]])]
    return "\n".join(parts)


def render_decision(name: str, d: dict[str, Any]) -> str:
    """A manual promotion or a rollback, as the daemon recorded it."""
    what = "rolled back" if d["decision"] == "rollback" else d["decision"]
    return (f"{name}: {what}; current.pt now holds {_version(d.get('version'))} (sha256 {_sha(d.get('new_sha256'))}),"
            f" previously sha256 {_sha(d.get('previous_sha256'))}\nreason: {d.get('reason')}")


def render_eval(r: dict[str, Any]) -> str:
    version = f" v{r['version']}" if r.get("version") else ""
    head = [
        f"model       {r.get('model_name')}{version}{'  (cached result)' if r.get('cached') else ''}",
        f"checkpoint  {r.get('model_path')} (sha256 {_sha(r.get('checkpoint_sha256'))})",
        f"dataset     {r.get('dataset')} ({r.get('images', '?')} images)",
        f"settings    imgsz {r.get('imgsz')}, batch {r.get('batch')}, device {r.get('device')}, "
        f"ultralytics {r.get('ultralytics_version')}",
        f"eval id     {r.get('eval_id')}",
    ]
    rows = [[m, r.get(m)] for m in ("score", "mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold")]
    for size in ("small", "medium", "large"):
        found, total = r.get(f"{size}_object_found"), r.get(f"{size}_object_count")
        count = f"{found}/{total} found" if total is not None else ""
        rows.append([f"{size}_object_recall", r.get(f"{size}_object_recall"), count])
    spread = (f"IQR {fmt(r.get('inference_ms_iqr'), 1)} over {r['inference_batches']} batches (warm-up left out)"
              if r.get("inference_batches") else "")
    rows += [["inference_ms", fmt(r.get("inference_ms"), 1), spread]]
    rows += [[m, fmt(r.get(m), 1), ""] for m in ("preprocess_ms", "postprocess_ms")]
    rows.append(["model_size_mb", fmt(r.get("model_size_mb"), 1), ""])
    parts = [*head, "", table(["METRIC", "VALUE", ""], [row + [""] * (3 - len(row)) for row in rows])]
    per_class = r.get("per_class_metrics") or {k: {"ap50": v} for k, v in (r.get("per_class") or {}).items()}
    if per_class:
        parts += ["", table(["CLASS", "AP50", "AP50_95", "P", "R", "SUPPORT"],
                            [[name, c.get("ap50"), c.get("ap50_95"), c.get("precision"), c.get("recall"),
                              c.get("support")] for name, c in per_class.items()])]
    if r.get("weights"):
        parts += ["", "score weights: " + ", ".join(f"{k} {v:.3g}" for k, v in r["weights"].items())]
    parts += [f"warning: {w}" for w in r.get("warnings") or []]
    if r.get("promotion"):
        p = r["promotion"]
        parts.append(f"promotion: {p['decision']}: {p['reason']}")
    return "\n".join(parts)


def render_train(r: dict[str, Any]) -> str:
    parts = [f"trained     {r['model_name']} v{r['version']} ({r.get('epochs')} epochs)",
             f"checkpoint  {r['checkpoint']} (sha256 {_sha(r.get('checkpoint_sha256'))})",
             f"onnx        {r.get('onnx') or 'not exported: ' + str(r.get('onnx_error'))}",
             f"pipeline    {r.get('pipeline')}"]
    training = {k: v for k, v in (r.get("training") or {}).items() if not isinstance(v, (dict, list))}
    if training:
        parts += ["", "final training metrics:", table(["METRIC", "VALUE"], [[k, v] for k, v in training.items()])]
    if r.get("evaluation"):
        parts += ["", "evaluation:", render_eval(r["evaluation"])]
    if r.get("promotion"):
        p = r["promotion"]
        parts.append(f"promotion: {p['decision']}: {p['reason']}")
    return "\n".join(parts)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: Any) -> float | None:
    return float(v) if _number(v) else None


def _interval(s: dict[str, Any]) -> list[str]:
    """The '95% CI (A-B)', 'P' and 'SIGNIFICANT' cells of a statistics row (its interval is of a - b)."""
    lo, hi = _num(s.get("ci_low")), _num(s.get("ci_high"))
    ci = f"[{lo:+.4f}, {hi:+.4f}]" if _number(lo) and _number(hi) else "-"
    p = _num(s.get("p_value"))
    p_cell = "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
    return [ci, p_cell, fmt(s.get("significant")) if "significant" in s else "-"]


def _better(diff: Any) -> str:
    """Who wins on a higher-is-better metric, from its A - B difference."""
    if not _number(diff):
        return "-"
    return "tie" if diff == 0 else ("A" if diff > 0 else "B")


def render_compare(r: dict[str, Any]) -> str:
    stats = r.get("statistics") if isinstance(r.get("statistics"), dict) else None
    per_metric = (stats or {}).get("metrics") if isinstance((stats or {}).get("metrics"), dict) else {}
    level = f"{1 - stats['alpha']:.0%}" if stats and _number(stats.get("alpha")) else "95%"
    headers = ["METRIC", "A", "B", "DIFF (A-B)", "BETTER"]
    if per_metric:
        headers += [f"{level} CI (A-B)", "P", "SIGNIFICANT"]
    rows = []
    for name, m in r["metrics"].items():
        digits = 1 if name == "inference_ms" else 4
        row = [name, fmt(m["a"], digits), fmt(m["b"], digits),
               "-" if m["diff"] is None else f"{m['diff']:+.{digits}f}",
               {"a": "A", "b": "B"}.get(m["better"], fmt(m["better"]))]
        rows.append(row + (_interval(per_metric.get(name) or {}) if per_metric else []))
    for name, s in (per_metric or {}).items():  # bootstrapped metrics the spec's table lacks (accuracy_score)
        if name not in r["metrics"] and isinstance(s, dict):
            diff = _num(s.get("diff"))
            rows.append([name, s.get("a"), s.get("b"), f"{diff:+.4f}" if _number(diff) else "-", _better(diff),
                         *_interval(s)])
    winner = r.get("winner")
    parts = [f"A = {r['model_a']}", f"B = {r['model_b']}"]
    if r.get("dataset"):
        parts.append(f"dataset {r['dataset']}")
    parts += ["", table(headers, rows), "",
              f"winner: {winner if winner else 'undecided (a score is missing)'}"
              + (f" by {r['score_diff']:.4f} score" if r.get("score_diff") and winner != "tie" else "")]
    parts += _render_errors(r.get("errors"))
    if stats is None:
        parts.append("(no bootstrap statistics: compare with --resamples N > 0 for intervals and flips)")
    else:
        parts += _render_statistics(stats, level)
    return "\n".join(parts)


def _render_errors(errors: Any) -> list[str]:
    """Both error breakdowns side by side, and what changed (``localization errors 412 -> 170``)."""
    if not isinstance(errors, dict):
        return []
    if not errors.get("available"):
        return ["", f"error breakdown: {errors.get('detail', 'unavailable')}"]
    rows = [[k, r["a"], r["b"], f"{r['diff']:+d}" if isinstance(r["diff"], int) else "-"]
            for k, r in errors["rows"].items()]
    return ["", "errors at each model's operating point (DESIGN.md error types):",
            table(["COUNT", "A", "B", "DIFF (A-B)"], rows),
            "changed: " + ("; ".join(errors["changes"]) or "nothing")]


def _render_statistics(stats: dict[str, Any], level: str) -> list[str]:
    """The paired-bootstrap part of a comparison beyond the per-metric intervals."""
    parts = ["", f"paired bootstrap: {stats.get('n_resamples', '?')} resamples of {stats.get('n_images', '?')} "
                 f"images (seed {stats.get('seed', '?')}), {level} percentile intervals"]
    per_class = stats.get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = []
        for name, s in per_class.items():
            diff = _num(s.get("diff"))
            rows.append([name, s.get("support"), s.get("a"), s.get("b"), f"{diff:+.4f}" if _number(diff) else "-",
                         *_interval(s)])
        parts += ["", "per-class AP50:",
                  table(["CLASS", "SUPPORT", "A", "B", "DIFF (A-B)", f"{level} CI (A-B)", "P", "SIGNIFICANT"], rows)]
    flips = stats.get("flips")
    if isinstance(flips, dict) and "error" in flips:
        parts += ["", f"flip table unavailable: {flips['error']}"]
    elif isinstance(flips, dict) and flips:
        rows = [[name, f.get("total"), f.get("found_a"), f.get("found_b"), f.get("a_only"), f.get("b_only"),
                 ", ".join(f.get("examples_a_only") or []) or "-", ", ".join(f.get("examples_b_only") or []) or "-"]
                for name, f in flips.items() if isinstance(f, dict)]
        parts += ["", "objects found by one model only (flips):",
                  table(["CLASS", "OBJECTS", "FOUND_A", "FOUND_B", "A_ONLY", "B_ONLY", "E.G. A ONLY", "E.G. B ONLY"],
                        rows)]
    known = {"metrics", "per_class", "flips", "n_images", "n_resamples", "seed", "alpha", "weights"}
    for key, value in stats.items():
        if key not in known:
            parts += _render_any(key, value)
    return parts


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _render_any(title: str, value: Any, depth: int = 0) -> list[str]:
    """Readable lines for a statistics part of unknown shape: tables for lists or maps of rows."""
    label = title.replace("_", " ")
    if _scalar(value):
        return [f"{label}: {fmt(value)}"]
    if isinstance(value, list) and all(_scalar(v) for v in value):
        shown = ", ".join(fmt(v) for v in value[:10])
        return [f"{label}: {shown}" + (f", ... ({len(value) - 10} more)" if len(value) > 10 else "")]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for row in value for k, v in row.items() if _scalar(v)))
        return [f"{label}:", table([k.upper() for k in keys], [[row.get(k) for k in keys] for row in value])]
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()) and all(
            all(_scalar(x) for x in v.values()) for v in value.values()):
        keys = list(dict.fromkeys(k for row in value.values() for k in row))
        return [f"{label}:", table(["", *(k.upper() for k in keys)],
                                   [[name, *(row.get(k) for k in keys)] for name, row in value.items()])]
    if isinstance(value, dict) and depth < 3:
        lines = [f"{label}:"] if value else [f"{label}: (empty)"]
        for k, v in value.items():
            lines += ["  " + line for line in _render_any(k, v, depth + 1)]
        return lines
    return [f"{label}: {json.dumps(value)}"]


if __name__ == "__main__":
    sys.exit(main())
