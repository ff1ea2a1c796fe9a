"""The HTTP process never imports torch or ultralytics: only worker processes do (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "ultralytics", "torchvision", "cv2")


def test_daemon_and_handlers_import_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "import daemon.main, daemon.service, vision_eval.cli, handlers.app\n"
        "from daemon.config import Config\n"
        "from daemon.service import Service\n"
        "from handlers.app import make_app\n"
        "make_app(Service(Config()))\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
