"""The Ray head the daemon uses: where it is, how it is named in logs and ``/healthz``, and whether it is there.

- ``[workers] ray_address = ""`` starts a local head, bound to 127.0.0.1
  (so a unit's ``IPAddressAllow=localhost`` lets the daemon reach it; Ray
  otherwise binds the host's own non-loopback address). Its processes are the
  daemon's children: it is lost the moment its ``gcs_server`` or ``raylet``
  exits.
- ``"auto"`` or ``"host:port"`` joins a running cluster. Ray rewrites a
  loopback host to the node's own address and finds ``"auto"`` through
  ``$RAY_ADDRESS`` or ``/tmp/ray/ray_current_cluster`` (hidden by systemd's
  ``PrivateTmp=yes``): every message names the configured address, and the one
  Ray dials where they differ.

Before ``ray.init`` a head is there when its GCS port accepts a TCP connection;
after, when its GCS answers a node listing within PROBE_TIMEOUT_S (a hung head
fails that too) that shows a live node. Ray's own calls block for as long as
Ray keeps retrying a lost head (a minute by default): ``in_thread`` runs them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from daemon.jobs.workers import describe_exit

LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray uses 127.0.0.1 as this node's address
RECONNECT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"  # how long Ray retries a lost GCS, then exits the process
PROBE_TIMEOUT_S = 2.0
T = TypeVar("T")
CORE_PROCESSES = ("gcs_server", "raylet")  # a local head without one of these cannot run anything


def prepare_environment(local: bool, give_up_after_s: float) -> None:
    """Set what Ray reads at import and start-up: a local head on loopback only, and Ray giving up on a lost
    head (and ending this process with its own exit status) only ``give_up_after_s`` after it is lost, so the
    daemon stops first, with its own status. Values already in the environment are kept."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    os.environ.setdefault(RECONNECT_ENV, str(int(give_up_after_s)))
    if local:
        os.environ.setdefault(LOCAL_ONLY_ENV, "0")


def route_ray_logging() -> None:
    """Ray's Python loggers write through the daemon's handlers (text or JSON), not a handler of their own."""
    ray_logger = logging.getLogger("ray")
    for handler in list(ray_logger.handlers):
        ray_logger.removeHandler(handler)
    ray_logger.propagate = True


class Head:
    """The configured head (see module contract); ``gcs`` is the ``host:port`` Ray dials, once known."""

    def __init__(self, configured: str) -> None:
        self.configured = configured
        self.gcs: str | None = None
        self._node: Any = None  # a local head's ray._private.node.Node: its processes
        self._client: Any = None  # the driver's GCS client (calls with a timeout)

    @property
    def local(self) -> bool:
        return not self.configured

    def name(self) -> str:
        """How messages name the head: the configured address, and the one Ray dials where it differs."""
        if self.local:
            return "the local Ray head" + (f" ({self.gcs})" if self.gcs else "")
        dials = f"; Ray dials {self.gcs}" if self.gcs and self.gcs != self.configured else ""
        return f'the Ray head at "{self.configured}" ([workers] ray_address{dials})'

    def resolve(self) -> str | None:
        """Find the address Ray will dial (``gcs``); why it cannot be found, or None. A local head: None."""
        if self.local:
            return None
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            self.gcs = canonicalize_bootstrap_address_or_die(self.configured)
        except (ConnectionError, ValueError) as exc:
            hint = (" (under systemd, PrivateTmp=yes hides the host's /tmp/ray: set ray_address to the head's "
                    "host:port)") if self.configured == "auto" else ""
            return f"{self.name()} cannot be found: {exc}{hint}"
        return None

    def connected(self) -> None:
        """Learn, after ``ray.init``, the GCS address and client, and (a local head) the head's processes."""
        import ray

        self.gcs = ray.get_runtime_context().gcs_address
        self._client = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
        if self.local:
            self._node = ray._private.worker._global_node

    async def reachable(self) -> str | None:
        """Before ``ray.init``: why the head's GCS port does not accept a connection, or None."""
        if self.gcs is None:
            return None
        host, _, port = self.gcs.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), PROBE_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            why = f"no answer within {PROBE_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else str(exc)
            return f"{self.name()} cannot be reached: {why}"
        writer.close()
        return None

    async def problem(self) -> str | None:
        """After ``ray.init``: why the head cannot be used now (a local head's core process exited, its GCS
        does not answer, or no node of the cluster is alive), or None. A core process that dies while its
        GCS is asked is named too: the exit is the cause, the silence only its symptom."""
        if gone := self._gone():
            return gone
        try:
            nodes = await in_thread(self._client.get_all_node_info, timeout=PROBE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - Ray's RpcError, or the thread's TimeoutError
            return self._gone() or f"{self.name()} does not answer: {type(exc).__name__}: {exc}"
        if not any(node.state == ALIVE for node in nodes.values()):
            names = ", ".join(sorted(node.node_manager_address for node in nodes.values())) or "none"
            return f"{self.name()} answers, but no node of its cluster is alive (dead: {names})"
        return None

    def _gone(self) -> str | None:
        """Which of a local head's core processes exited, and how, or None."""
        dead = ", ".join(f"its {kind} (pid {proc.pid}) exited ({describe_exit(proc.returncode)})"
                         for kind, proc in (self._node.dead_processes() if self._node else ())
                         if kind in CORE_PROCESSES)
        return f"{self.name()} is gone: {dead}" if dead else None


ALIVE = 0  # GcsNodeInfo.ALIVE (ray.core.generated.gcs_pb2)


async def in_thread(fn: Callable[..., T], *args: Any, timeout: float | None = None,
                    linger: threading.Event | None = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a daemon thread: a Ray call stuck on a lost head neither blocks the event
    loop nor holds up the daemon's exit (a thread pool's threads are joined at exit). TimeoutError after
    ``timeout`` seconds (the call itself is left running). With ``linger``, the thread ends only once it is
    set: the processes of a local head die with the thread that started them (Ray sets PR_SET_PDEATHSIG)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def body() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (fn(*args, **kwargs), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass
        if linger is not None:
            linger.wait()

    threading.Thread(target=body, name=f"ray-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await asyncio.wait_for(asyncio.shield(future), timeout)
