"""`vision-eval eval --local` makes no network attempt: the real CLI in a child process, under an audit hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# Audit events that mean "reaching for the network" (connect, DNS, HTTP) or "installing something".
NETWORK_EVENTS = (
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
    "socket.sendto",
    "socket.sendmsg",
    "urllib.Request",
    "http.client.connect",
    "http.client.send",
)

CHILD = textwrap.dedent(
    """
    import sys
    _log = open(sys.argv[1], "w", buffering=1)
    _NET = frozenset(sys.argv[2].split(","))

    def _hook(event, args, _log=_log, _NET=_NET):
        if event in _NET:
            _log.write(f"NET {event} {args!r:.300}\\n")
        elif event == "subprocess.Popen":
            _log.write(f"PROC {args!r:.300}\\n")

    sys.addaudithook(_hook)
    from vision_eval.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


def _child_env(tmp_path: Path) -> dict[str, str]:
    """The parent's environment minus every ultralytics/offline variable: the CLI must set them itself."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("YOLO_", "ULTRALYTICS_", "MPLCONFIGDIR", "XDG_", "PYTHON"))
    }
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    cache.mkdir()
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=str(REPO_ROOT), PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.mark.ultralytics
def test_local_eval_cli_makes_no_network_attempt(tmp_path, strong_pt, synth_dataset):
    log = tmp_path / "audit.log"
    predictions = tmp_path / "preds.json"
    argv = [
        "eval", "--local", str(strong_pt), str(synth_dataset),
        "--imgsz", "192", "--batch", "8", "--device", "cpu", "--predictions", str(predictions),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(log), ",".join(NETWORK_EVENTS), *argv],
        cwd=tmp_path, env=_child_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    # The hook really ran (it logs at least the events it sees); no network or install attempt.
    assert log.exists()
    events = log.read_text().splitlines()
    network = [e for e in events if e.startswith("NET ")]
    assert network == [], network
    installs = [e for e in events if e.startswith("PROC ") and any(w in e for w in ("pip", "uv", "install"))]
    assert installs == [], installs

    result = json.loads(proc.stdout)
    for key in (
        "model_name", "mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold", "per_class",
        "per_class_metrics", "inference_ms", "preprocess_ms", "postprocess_ms", "small_object_recall",
        "medium_object_recall", "large_object_recall", "model_size_mb", "score", "weights", "device",
        "imgsz", "batch", "images", "checkpoint_sha256", "dataset_fingerprint", "warnings",
    ):
        assert key in result, key
    assert result["model_name"] == "strong"
    assert (result["imgsz"], result["batch"], result["device"], result["images"]) == (192, 8, "cpu", 24)
    assert 0.0 <= result["mAP50"] <= 1.0 and result["score"] is not None
    assert json.loads(predictions.read_text()), "predictions artifact is empty"
    # The CLI kept ultralytics' state in its private dir under XDG_CACHE_HOME, with the font seeded.
    config = tmp_path / "cache" / "vision-evald" / "ultralytics" / "Ultralytics"
    assert (config / "Arial.ttf").is_file()
    assert not (tmp_path / "home" / ".config" / "Ultralytics").exists()


def test_audit_hook_detects_a_connection_attempt(tmp_path):
    """The harness itself: a child that does try to connect is caught (so an empty log means something)."""
    log = tmp_path / "audit.log"
    code = CHILD.replace(
        "from vision_eval.cli import main",
        "import socket\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\nexcept OSError:\n    pass\n"
        "def main(argv):\n    return 0",
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(log), ",".join(NETWORK_EVENTS)],
        cwd=tmp_path, env=_child_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    events = log.read_text()
    assert "NET socket.getaddrinfo" in events or "NET socket.connect" in events, events
