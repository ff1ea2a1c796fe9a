"""The commands of ``vision-eval`` that talk to a daemon, one function each (``COMMANDS``).

Each takes a ``Context`` (the client, the parsed arguments, where the URL
came from and the terminal width) and returns the exit status; usage errors
raise ``Exit``. An empty answer (no jobs, no models, no evaluations) is
followed on stderr by which daemon answered and where its URL came from,
unless ``--url`` named it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision_eval.api import body
from vision_eval.client import Client
from vision_eval.formats import shown_path
from vision_eval.progress import ProgressBar
from vision_eval.render import render_eval, render_train
from vision_eval.render_compare import render_compare
from vision_eval.render_models import render_cancelled, render_decision, render_jobs, render_model, render_models
from vision_eval.render_rankings import render_history, render_leaderboard
from vision_eval.text_table import paragraph
from vocab.files import looks_like_path
from vocab.tasks import canonical_task

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
KNOWN_DATASETS_LIMIT = 1000  # the API's largest leaderboard ?limit=

Render = Callable[[Any, "int | None"], str]


class Exit(Exception):
    """Stop with this exit status, after printing ``message`` on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Context:
    """What a command needs: the client, its arguments, where the daemon's URL came from (None: --url)
    and the terminal's width (None: no limit)."""

    client: Client
    args: argparse.Namespace
    source: str | None
    width: int | None

    def say_where(self) -> None:
        """Name the daemon that answered, on stderr, unless --url named it."""
        if self.source is not None:
            print(paragraph(f"(asked vision-evald at {self.client.url}: {self.source})", self.width), file=sys.stderr)

    def output(self, value: Any, render: Render, *, empty: bool = False) -> int:
        """Print ``value`` (JSON with --json, else rendered to the width); ``empty``: say which daemon answered."""
        print(json.dumps(value, indent=2) if self.args.json else render(value, self.width))
        if empty:
            self.say_where()
        return EXIT_OK


def _abs(raw: str) -> str:
    """A client-side path made absolute (the daemon resolves relative paths against its own cwd)."""
    return str(Path(raw).expanduser().absolute())


def _model(raw: str) -> str:

    return _abs(raw) if looks_like_path(raw) else raw


def _json_arg(raw: str | None, option: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Exit(EXIT_USAGE, f"error: {option} is not valid JSON: {exc}") from None


def _task(raw: str | None) -> str | None:
    return canonical_task(raw) if raw is not None else None


def cmd_eval(ctx: Context) -> int:
    args = ctx.args
    for option in ("device", "models_root"):
        if getattr(args, option) is not None:
            raise Exit(EXIT_USAGE, f"error: --{option.replace('_', '-')} applies only to eval --local")
    if args.predictions and args.no_wait:
        raise Exit(EXIT_USAGE, "error: --predictions needs the finished job: leave out --no-wait")
    job = ctx.client.eval(_model(args.model), _abs(args.dataset), imgsz=args.imgsz, batch_size=args.batch,
                          weights=_json_arg(args.weights, "--weights"), allow_class_mismatch=args.allow_class_mismatch,
                          auto_promote=args.auto_promote, split=args.split)
    code = submitted(ctx, job, render_eval)
    if code == EXIT_OK and args.predictions:
        predictions = ctx.client.predictions(job["job_id"])
        Path(args.predictions).write_text(json.dumps(predictions), encoding="utf-8")
        print(f"predictions written to {args.predictions}", file=sys.stderr)
    return code


def cmd_compare(ctx: Context) -> int:
    args = ctx.args
    job = ctx.client.compare(_model(args.model_a), _model(args.model_b), _abs(args.dataset), imgsz=args.imgsz,
                             batch_size=args.batch, weights=_json_arg(args.weights, "--weights"),
                             bootstrap_resamples=args.resamples, bootstrap_seed=args.seed, split=args.split)
    return submitted(ctx, job, render_compare)


def cmd_train(ctx: Context) -> int:
    args = ctx.args
    config = body(epochs=args.epochs, batch_size=args.batch, imgsz=args.imgsz,
                  learning_rate=args.learning_rate, patience=args.patience)
    job = ctx.client.train(args.model, _abs(args.dataset), task=_task(args.task), config=config,
                           base_model=_model(args.base_model) if args.base_model else None, auto_eval=args.auto_eval,
                           auto_promote=args.auto_promote,
                           eval_weights=_json_arg(args.eval_weights, "--eval-weights"), split=args.split)
    return submitted(ctx, job, render_train)


def _filters(args: argparse.Namespace, content: bool) -> str:
    """The leaderboard's filters in words: ``split test, task pose[, its current content]``."""
    named = [f"split {args.split}" if args.split else "", f"task {_task(args.task)}" if args.task else "",
             "its current content" if content and not args.all_content else ""]
    return ", ".join(n for n in named if n)


def _no_evaluations(ctx: Context, dataset: str | None) -> str:
    """Why the leaderboard is empty: nothing evaluated, or not that dataset (and which datasets are known)."""
    if dataset is None:
        filters = _filters(ctx.args, content=False)
        return "no evaluations yet" + (f" ({filters})" if filters else "")
    rows = ctx.client.leaderboard(limit=KNOWN_DATASETS_LIMIT, content="all")
    known = sorted({r["dataset"] for r in rows if r.get("dataset")})
    if dataset in known:
        text = (f"no evaluations of that dataset with {_filters(ctx.args, content=True)}; it has others "
                "(leave out --split or --task, or add --all-content)")
    else:
        text = f"no evaluations of that dataset; known datasets: {', '.join(map(shown_path, known)) or 'none'}"
    return paragraph(text, ctx.width)


def cmd_leaderboard(ctx: Context) -> int:
    args = ctx.args
    dataset = _abs(args.dataset) if args.dataset else None
    _json_arg(args.weights, "--weights")
    query: dict[str, Any] = {"dataset": dataset, "limit": args.limit, "split": args.split, "weights": args.weights,
                             "content": "all" if args.all_content else None, "task": _task(args.task)}
    if args.csv:  # the HTTP route's CSV: the same columns by construction
        print(ctx.client.leaderboard(**query, format="csv").rstrip("\r\n"))
        return EXIT_OK
    rows = ctx.client.leaderboard(**query)
    if rows or args.json:
        return ctx.output(rows, render_leaderboard, empty=not rows)
    print(_no_evaluations(ctx, dataset))
    ctx.say_where()
    return EXIT_OK


def cmd_history(ctx: Context) -> int:
    args = ctx.args
    _json_arg(args.weights, "--weights")
    query: dict[str, Any] = {"limit": args.limit, "split": args.split, "weights": args.weights,
                             "task": _task(args.task)}
    if args.csv:
        print(ctx.client.history(args.model, **query, format="csv").rstrip("\r\n"))
        return EXIT_OK
    return ctx.output(ctx.client.history(args.model, **query), render_history)


def cmd_jobs(ctx: Context) -> int:
    reply = ctx.client.jobs(status=ctx.args.status, kind=ctx.args.kind, limit=ctx.args.limit)
    return ctx.output(reply, render_jobs, empty=not reply["jobs"])


def cmd_cancel(ctx: Context) -> int:
    return ctx.output(ctx.client.cancel(ctx.args.job_id), render_cancelled)


def cmd_models(ctx: Context) -> int:
    if ctx.args.name:
        return ctx.output(ctx.client.model(ctx.args.name), render_model)
    listing = ctx.client.models()
    return ctx.output(listing, render_models, empty=not listing["models"])


def cmd_promote(ctx: Context) -> int:
    decision = ctx.client.promote(ctx.args.name, ctx.args.version, reason=ctx.args.reason, force=ctx.args.force)
    return ctx.output(decision, lambda d, width: render_decision(ctx.args.name, d, width))


def cmd_rollback(ctx: Context) -> int:
    decision = ctx.client.rollback(ctx.args.name, reason=ctx.args.reason)
    return ctx.output(decision, lambda d, width: render_decision(ctx.args.name, d, width))


COMMANDS: dict[str, Callable[[Context], int]] = {
    "eval": cmd_eval, "compare": cmd_compare, "train": cmd_train, "leaderboard": cmd_leaderboard,
    "history": cmd_history, "jobs": cmd_jobs, "cancel": cmd_cancel, "models": cmd_models,
    "promote": cmd_promote, "rollback": cmd_rollback,
}


def submitted(ctx: Context, job: dict[str, Any], render: Render) -> int:
    """Wait for a just-submitted job (unless --no-wait) and print it; the exit status of its outcome."""
    if ctx.args.no_wait:
        return ctx.output(job, lambda j, _width: f"{j['kind']} job {j['job_id']} {j['status']}\nfollow it with: "
                                                 f"vision-eval jobs; cancel: vision-eval cancel {j['job_id']}")
    job = wait(ctx.client, job)
    if ctx.args.json:
        print(json.dumps(job, indent=2))
    elif job["status"] == "completed":
        print(render(job["result"], ctx.width))
    if job["status"] != "completed":
        print(paragraph(f"error: {job['kind']} job {job['job_id']} {job['status']}: "
                        f"{job.get('error') or 'no error given'}", ctx.width), file=sys.stderr)
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
