"""``vision-eval``'s commands in-process: an empty answer names the daemon that gave it and where its URL
came from; a leaderboard of an unknown dataset names the known ones; ``--task`` sends the task's name.

The empty answers come from a real daemon started in-process (``tests.inprocess.running_service``, no
worker ever runs). What ``--task`` sends is read off a recording client instead: the daemon does not
accept ``?task=`` yet, so that part cannot run against the real thing here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.inprocess import running_service, url
from vision_eval import cli
from vision_eval.api import DEFAULT_URL, Call
from vision_eval.client import Client
from vision_eval.commands import COMMANDS, Context


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("VISION_EVAL_URL", "VISION_EVAL_TOKEN", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_an_empty_answer_names_the_daemon_and_where_its_url_came_from(
        tmp_path: Path, no_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_service(tmp_path) as svc:
        no_env.setenv("VISION_EVAL_URL", url(svc))
        note = f"(asked vision-evald at {url(svc)}: from $VISION_EVAL_URL)"
        assert await run(capsys, "jobs") == (0, "no jobs\n", note + "\n")
        assert await run(capsys, "models") == (0, "no models in the models folder\n", note + "\n")
        code, out, err = await run(capsys, "leaderboard", "--dataset", "/nowhere/data.yaml")
        assert (code, err) == (0, note + "\n")
        assert out == "no evaluations of that dataset; known datasets: none\n"
        code, _, err = await run(capsys, "history", "nobody")
        assert code == 2 and err.splitlines() == ["error: No evaluations found for: nobody (HTTP 404)", note]
        assert await run(capsys, "--url", url(svc), "jobs") == (0, "no jobs\n", "")  # --url named it: no note


def test_the_url_comes_from_the_flag_the_environment_or_the_default(no_env: pytest.MonkeyPatch) -> None:
    parser = cli.build_parser()
    client, source = cli.connect(parser.parse_args(["jobs"]))
    assert client.url == DEFAULT_URL and source is not None and source.startswith("the default URL")
    no_env.setenv("VISION_EVAL_URL", "http://10.0.0.5:11540")
    client, source = cli.connect(parser.parse_args(["jobs"]))
    assert (client.url, source) == ("http://10.0.0.5:11540", "from $VISION_EVAL_URL")
    client, source = cli.connect(parser.parse_args(["--url", "http://h:1", "jobs"]))
    assert (client.url, source) == ("http://h:1", None)


class Recorder(Client):
    """A client that records each call and answers it from ``answer`` (see the module's docstring)."""

    def __init__(self, answer: Any) -> None:
        super().__init__("http://recorder.invalid")
        self.answer = answer
        self.calls: list[Call] = []

    def _send(self, call: Call) -> Any:
        self.calls.append(call)
        return self.answer(call)


def command(argv: list[str], answer: Any) -> tuple[Recorder, int]:
    args = cli.build_parser().parse_args(argv)
    client = Recorder(answer)
    return client, COMMANDS[args.command](Context(client, args, None, 80))


def test_task_options_send_the_tasks_own_name(capsys: pytest.CaptureFixture[str]) -> None:
    client, code = command(["leaderboard", "--task", "classify"], lambda call: [])
    assert code == 0 and client.calls[0].query is not None and client.calls[0].query["task"] == "classification"
    assert capsys.readouterr().out == "no evaluations yet (task classification)\n"
    client, _ = command(["history", "det", "--task", "segment", "--csv"], lambda call: "eval_id\r\n")
    assert client.calls[0].query == {"limit": None, "split": None, "weights": None, "task": "segmentation",
                                     "format": "csv"}
    assert client.calls[0].text and capsys.readouterr().out == "eval_id\n"
    job = {"job_id": "j1", "kind": "train", "status": "queued"}
    client, _ = command(["train", "m", "/d/data", "--task", "pose", "--no-wait"], lambda call: job)
    assert client.calls[0].body is not None and client.calls[0].body["task"] == "pose"
    client, _ = command(["train", "m", "/d/data.yaml", "--no-wait"], lambda call: job)
    assert client.calls[0].body is not None and "task" not in client.calls[0].body  # the daemon's default
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["leaderboard", "--task", "segmentaton"])


def test_a_leaderboard_of_an_unknown_dataset_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    known = [{"rank": 1, "model_name": "det", "dataset": "/srv/a/data.yaml"},
             {"rank": 2, "model_name": "weak", "dataset": "/srv/b/data.yaml"},
             {"rank": 3, "model_name": "weak", "dataset": "/srv/a/data.yaml"}]

    def answer(call: Call) -> Any:
        return known if (call.query or {}).get("dataset") is None else []

    client, code = command(["leaderboard", "--dataset", "/srv/c/data.yaml"], answer)
    assert code == 0 and [c.query["dataset"] for c in client.calls if c.query] == ["/srv/c/data.yaml", None]
    assert capsys.readouterr().out == ("no evaluations of that dataset; known datasets: /srv/a/data.yaml,\n"
                                       "  /srv/b/data.yaml\n")  # wrapped to the width, 80
    command(["leaderboard", "--dataset", "/srv/a/data.yaml", "--split", "test"], answer)
    assert "no evaluations of that dataset with split test, its current content; it has others" in " ".join(
        capsys.readouterr().out.split())

