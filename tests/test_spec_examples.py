"""The spec's curl and Python examples, as written, against a real daemon (issue 10, item 6).

The examples are the API page's own (LlamaFarm's "Vision Model Evaluation"
documentation), copied below as written: eight curl commands and the two
Python scripts. Only these are
substituted: the host and port (both ``localhost:14345`` and
``localhost:11540`` become the daemon's), the dataset paths (every example
path becomes the test dataset) and the image size (640 -> 320: the fixture
checkpoints were trained small). The Python scripts also get two changes of
pace that change no request or answer: the train example's 20 epochs become
1 (the API takes any count; 20 epochs on a CPU only cost a minute) and their
poll sleeps (5 and 10 s) become 0.5 s. The poll example's job id ``a1b2c3d4`` is the
id the previous example's answer gave, as the page says. The page lost the
Python examples' indentation; the copies below restore it.

Model names are the spec's own: the daemon's models folder holds
``my-detector/current.pt`` and ``aerial-5epoch/v1.pt`` (evaluated once before
the history example); ``aerial-v3`` and ``aerial-v4`` are trained by the
examples. The dataset is tiny (4 train and 6 val images, all three classes,
small objects among them) so that the examples' trainings at the default
image size run in a test.
Each answer's shape is checked; the curl train jobs are held and cancelled once
answered, before they start (their 10 epochs would only cost time), the Python
examples run to their end.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixtures import STRONG_PT, place_model
from tests.fixtures.synth import make_dataset
from tests.inprocess import InProcessDaemon

pytestmark = pytest.mark.ultralytics

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
SPEC_PATHS = ("/path/to/dataset.yaml", "/path/to/visdrone.yaml", "/data/coco-subset.yaml", "/data/visdrone.yaml")

# The page's curl examples, one after another as the page has them (its other text left out).
CURL_TEXT = """\
curl -X POST http://localhost:14345/v1/vision/eval \\
-F "model=my-detector" \\
-F "dataset=/path/to/dataset.yaml"
curl -X POST http://localhost:11540/v1/vision/eval \\
-H "Content-Type: application/json" \\
-d '{
"model": "my-detector",
"dataset": "/path/to/dataset.yaml"
}'
curl http://localhost:14345/v1/vision/eval/a1b2c3d4
curl http://localhost:14345/v1/vision/eval/leaderboard
curl "http://localhost:14345/v1/vision/eval/leaderboard?dataset=/path/to/visdrone.yaml&limit=10"
curl http://localhost:14345/v1/vision/eval/leaderboard/aerial-5epoch
curl -X POST http://localhost:14345/v1/vision/train \\
-F "model=aerial-v3" \\
-F "dataset=/path/to/dataset.yaml" \\
-F "task=detection" \\
-F "epochs=10" \\
-F "auto_eval=true" \\
-F "auto_promote=true"
curl -X POST http://localhost:11540/v1/vision/train \\
-H "Content-Type: application/json" \\
-d '{
"model": "aerial-v3",
"dataset": "/path/to/dataset.yaml",
"task": "detection",
"config": {"epochs": 10},
"auto_eval": true,
"auto_promote": true
}'
"""

PYTHON_EVAL_EXAMPLE = '''\
import httpx
import time

LLAMAFARM = "http://localhost:14345"

# Start evaluation
resp = httpx.post(f"{LLAMAFARM}/v1/vision/eval", data={
    "model": "my-detector",
    "dataset": "/data/coco-subset.yaml",
    "imgsz": 640,
})
job_id = resp.json()["job_id"]

# Poll until complete
while True:
    status = httpx.get(f"{LLAMAFARM}/v1/vision/eval/{job_id}").json()
    if status["status"] in ("completed", "failed"):
        break
    time.sleep(5)

if status["status"] == "completed":
    result = status["result"]
    print(f"mAP50: {result['mAP50']:.3f}")
    print(f"Score: {result['score']:.4f}")
    print(f"Small obj recall: {result['small_object_recall']:.3f}")

# Check leaderboard
lb = httpx.get(f"{LLAMAFARM}/v1/vision/eval/leaderboard").json()
for entry in lb:
    print(f"#{entry['rank']} {entry['model_name']}: {entry['score']:.4f}")
'''

PYTHON_TRAIN_EXAMPLE = '''\
import httpx
import time

LLAMAFARM = "http://localhost:14345"

# Single request: train + auto-eval + auto-promote
resp = httpx.post(f"{LLAMAFARM}/v1/vision/train", data={
    "model": "aerial-v4",
    "dataset": "/data/visdrone.yaml",
    "task": "detection",
    "epochs": 20,
    "batch_size": 8,
    "auto_eval": "true",
    "auto_promote": "true",
})
job_id = resp.json()["job_id"]

# Just wait for training — eval + promote happen automatically
while True:
    status = httpx.get(f"{LLAMAFARM}/v1/vision/train/{job_id}").json()
    print(f"Status: {status['status']} Progress: {status.get('progress', 0):.0%}")
    if status["status"] in ("completed", "failed"):
        break
    time.sleep(10)

# Check what got promoted
lb = httpx.get(f"{LLAMAFARM}/v1/vision/eval/leaderboard").json()
print(f"Current best: {lb[0]['model_name']} (score: {lb[0]['score']:.4f})")
'''

SPEC_RESULT_KEYS = {"model_name", "mAP50", "mAP50_95", "precision", "recall", "f1", "per_class", "inference_ms",
                    "small_object_recall", "medium_object_recall", "large_object_recall", "score", "model_size_mb"}
SPEC_LEADERBOARD_KEYS = {"rank", "model_name", "score", "mAP50", "mAP50_95", "precision", "recall", "f1",
                         "inference_ms", "small_object_recall", "dataset", "timestamp"}


# -- the page's examples ----------------------------------------------------------------------------
def curl_commands(lines: list[str]) -> list[str]:
    """Every curl command of the page: a line starting ``curl``, its ``\\`` continuations and the lines
    of a quoted ``-d`` body."""
    out, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("curl "):
            i += 1
            continue
        command = [lines[i]]
        while command[-1].endswith("\\") or "\n".join(command).count("'") % 2:
            i += 1
            command.append(lines[i])
        out.append("\n".join(command))
        i += 1
    return out


CURL_EXAMPLES = curl_commands(CURL_TEXT.splitlines())


# -- running them -------------------------------------------------------------------------------
class Env:
    def __init__(self, daemon: InProcessDaemon, dataset: Path, root: Path) -> None:
        self.daemon = daemon
        self.dataset = dataset
        self.root = root

    def substitute(self, text: str) -> str:
        text = text.replace("http://localhost:14345", self.daemon.url).replace("http://localhost:11540",
                                                                                self.daemon.url)
        for path in SPEC_PATHS:
            text = text.replace(path, str(self.dataset))
        return text.replace('"imgsz": 640', '"imgsz": 320')

    def curl(self, command: str, **placeholders: str) -> tuple[int, Any]:
        text = self.substitute(command)
        for old, new in placeholders.items():
            text = text.replace(old, new)
        args = shlex.split(text.replace("\\\n", " "))
        assert args[0] == "curl"
        proc = subprocess.run([*args, "-sS", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        body, _, code = proc.stdout.rpartition("\n")
        return int(code), json.loads(body)

    def python(self, example: str, name: str) -> str:
        script = self.root / name
        text = self.substitute(example)
        for old, new in (('"epochs": 20,', '"epochs": 1,'), ("time.sleep(10)", "time.sleep(0.5)"),
                         ("time.sleep(5)", "time.sleep(0.5)")):
            assert text.count(old) <= 1, old
            text = text.replace(old, new)
        script.write_text(text, encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900,
                              check=False)
        assert proc.returncode == 0, (proc.stdout, proc.stderr, self.daemon.log_tail())
        return proc.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("spec")
    dataset = make_dataset(root / "data", n_train=2, n_val=6, seed=5)  # the train example: 20 epochs at 640
    daemon = InProcessDaemon(root, config={"paths": {"allowed_roots": [str(root)]}, "eval": {"imgsz": 320}})
    place_model(daemon.models_root, "my-detector", STRONG_PT, "current.pt")
    place_model(daemon.models_root, "aerial-5epoch", STRONG_PT, "v1.pt")
    try:
        daemon.start()
        # The history example needs aerial-5epoch to have been evaluated once.
        job = daemon.submit_eval(model="aerial-5epoch", dataset=str(dataset))
        assert daemon.wait_job(job["job_id"])["status"] == "completed"
        yield Env(daemon, dataset, root)
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log_tail(200)


def check_submitted(code: int, answer: dict[str, Any], kind: str) -> None:
    assert 200 <= code < 300, (code, answer)
    assert {"job_id", "status", "created_at"} <= set(answer) and answer["status"] == "queued", answer
    assert ISO_RE.match(answer["created_at"]) and answer["kind"] == kind, answer


def check_leaderboard(code: int, rows: Any) -> None:
    assert code == 200 and isinstance(rows, list) and rows, (code, rows)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert SPEC_LEADERBOARD_KEYS <= set(row), row


def test_curl_examples(env: Env) -> None:
    eval_form, eval_json, poll, board, board_filtered, history, *trains = CURL_EXAMPLES
    code, form = env.curl(eval_form)
    check_submitted(code, form, "eval")
    code, js = env.curl(eval_json)
    check_submitted(code, js, "eval")
    env.daemon.wait_job(js["job_id"])
    code, polled = env.curl(poll, a1b2c3d4=js["job_id"])
    assert code == 200 and polled["job_id"] == js["job_id"] and polled["status"] == "completed", polled
    assert SPEC_RESULT_KEYS <= set(polled["result"]) and polled["result"]["model_name"] == "my-detector"
    assert set(polled["result"]["per_class"]) == {"red", "green", "blue"}
    env.daemon.wait_job(form["job_id"])
    check_leaderboard(*env.curl(board))
    code, rows = env.curl(board_filtered)
    check_leaderboard(code, rows)
    assert len(rows) <= 10 and {r["dataset"] for r in rows} == {str(env.dataset.resolve())}
    code, runs = env.curl(history)
    assert code == 200 and runs and all(r["model_name"] == "aerial-5epoch" for r in runs), runs
    with env.daemon.paused():  # held: each train job is cancelled before its training starts
        for command in trains:
            code, job = env.curl(command)
            check_submitted(code, job, "train")
            assert (job["total_epochs"], job["current_epoch"]) == (10, 0)
            assert env.daemon.http.delete(f"/v1/vision/train/{job['job_id']}").status_code == 200
            assert env.daemon.wait_job(job["job_id"], timeout=60)["status"] == "cancelled"


def test_python_examples(env: Env) -> None:
    out = env.python(PYTHON_EVAL_EXAMPLE, "eval_example.py").splitlines()
    assert re.fullmatch(r"mAP50: \d\.\d{3}", out[0]) and re.fullmatch(r"Score: \d\.\d{4}", out[1]), out
    assert re.fullmatch(r"Small obj recall: (\d\.\d{3})", out[2]), out
    assert all(re.fullmatch(r"#\d+ [\w.-]+: \d\.\d{4}", line) for line in out[3:]) and len(out) > 3, out

    out = env.python(PYTHON_TRAIN_EXAMPLE, "train_example.py").splitlines()
    assert all(re.fullmatch(r"Status: (queued|running|completed) Progress: \d+%", line) for line in out[:-1]), out
    assert out[-2] == "Status: completed Progress: 100%", out
    assert re.fullmatch(r"Current best: [\w.-]+ \(score: \d\.\d{4}\)", out[-1]), out
    trained = httpx.get(f"{env.daemon.url}/v1/vision/models/aerial-v4", timeout=30).json()
    assert [v["version"] for v in trained["versions"]] == [1] and trained["current"]["version"] == 1
