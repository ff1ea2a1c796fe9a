"""How ``Head.problem`` names a lost local head. Ray's node and GCS client are stand-ins here (a real head
cannot be made to lose its GCS in the middle of one listing on cue); the process that dies is a real one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from daemon.jobs.ray_head import Head


class _Node:
    """Ray's ``Node.dead_processes``: the (kind, Popen) pairs whose process has exited."""

    def __init__(self, gcs: subprocess.Popen[bytes]) -> None:
        self.gcs = gcs

    def dead_processes(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        return [("gcs_server", self.gcs)] if self.gcs.poll() is not None else []


class _ClientLosingItsGcs:
    """A GCS client whose listing fails because the GCS process is killed while it is asked."""

    def __init__(self, gcs: subprocess.Popen[bytes]) -> None:
        self.gcs = gcs

    def get_all_node_info(self) -> Any:
        self.gcs.kill()
        self.gcs.wait()
        raise TimeoutError("no answer")


def test_a_gcs_that_dies_while_it_is_asked_is_named_not_only_its_silence() -> None:
    gcs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        head = Head("")
        head.gcs = "127.0.0.1:6379"
        head._node, head._client = _Node(gcs), _ClientLosingItsGcs(gcs)
        problem = asyncio.run(head.problem())
    finally:
        gcs.kill()
        gcs.wait()
    assert problem == (f"the local Ray head (127.0.0.1:6379) is gone: its gcs_server (pid {gcs.pid}) exited "
                       "(killed by signal SIGKILL)"), problem
