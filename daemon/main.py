"""``vision-evald``: run the daemon, or check a config file and exit.

Signal handlers only set a flag; the shutdown itself lives in
``Service.close`` (after huey's consumer).

Exit status: 0 after SIGTERM or SIGINT; 1 when the daemon cannot start (e.g.
its port is taken); 2 for a bad config, a database that is not ours, or a
database or models root another daemon holds (restarting cannot help: the
systemd units set ``RestartPreventExitStatus=2``); 3 when the Ray head
(``[workers] backend = "ray"``) stayed lost for ``[workers] ray_head_grace_s``:
the daemon logs why, stops cleanly (running jobs back in the queue) before Ray
would end the process itself with status 1, and a restart starts or joins the
head afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.app.logs import FORMATS, configure_logging
from vocab.config import Config, load_config
from vocab.errors import ConfigError, DatabaseRefused, HomeInUse
from vocab.paths import config_candidates, discover_config
from vocab.version import version

if TYPE_CHECKING:
    from daemon.jobs.ray_backend import RayExecutor
    from daemon.jobs.workers import Executor


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vision-evald", description="Evaluate and promote YOLO checkpoints.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $XDG_CONFIG_HOME/vision-evald/"
                        "config.toml, else /etc/vision-evald/config.toml, when present; else built-in defaults)")
    parser.add_argument("--validate-config", type=Path, metavar="FILE", help="check FILE and exit")
    parser.add_argument("--host", help="the address to serve on ([server] host; a non-loopback address needs "
                        "[server] allow_non_loopback and an auth_token, as in the config file)")
    parser.add_argument("--port", type=int, help="the port to serve on ([server] port)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=FORMATS,
                        help="text (the time left out when stderr is the systemd journal) or json: one object "
                             "per line, for log shippers")
    return parser.parse_args(argv)


def config_path(given: Path | None) -> Path | None:
    """``--config``, else the first config file found where ``config_candidates`` looks; logs which."""
    log = logging.getLogger(__name__)
    if given is not None:
        log.info("config file: %s (--config)", given)
        return given
    found = discover_config()
    if found is None:
        log.info("no config file at %s: built-in defaults and VISION_EVALD_* variables",
                 " or ".join(map(str, config_candidates())))
    else:
        log.info("config file: %s (found without --config)", found)
    return found


def flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The environment the config is read with: ours, plus --host and --port as the VISION_EVALD_SERVER_*
    overrides they stand for (so a flag beats the environment, which beats the file, and the same checks
    apply to a flag as to the file)."""
    environ = dict(os.environ)
    if args.host is not None:
        environ["VISION_EVALD_SERVER_HOST"] = args.host
    if args.port is not None:
        environ["VISION_EVALD_SERVER_PORT"] = str(args.port)
    return environ


async def serve(config: Config) -> str | None:
    """Run until SIGTERM or SIGINT, or until the Ray head is lost for good; then stop cleanly. Returns
    why the Ray head was lost, or None after a signal."""
    from daemon.app.service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = Service(config)
    ray = _ray_executor(service.executor)
    try:
        await service.start()
        # Everything the start made (modules, the app, the caches' first fill) is never traversed by the
        # garbage collector again: a full collection during a burst of requests took about 50 ms, a few now.
        gc.freeze()
        waits = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(ray.lost.wait())] if ray else [])
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        if ray is not None and ray.lost.is_set() and not stop.is_set():
            return ray.lost_reason
        logging.getLogger(__name__).info("stop signal received; shutting down")
        return None
    finally:
        await service.close()


def _ray_executor(executor: Executor) -> RayExecutor | None:
    """The Ray backend, whose ``lost`` event ends the daemon; None for local workers."""
    from daemon.jobs.ray_backend import RayExecutor  # imports no ray

    return executor if isinstance(executor, RayExecutor) else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format, sys.stderr)
    try:
        if args.validate_config is not None:
            load_config(args.validate_config)
            print(f"{args.validate_config}: ok")
            return 0
        config = load_config(config_path(args.config), flag_overrides(args))
    except ConfigError as exc:
        fatal(args.log_format, f"configuration error: {exc.detail}")
        return 2
    try:
        lost = asyncio.run(serve(config))
    except DatabaseRefused as exc:
        fatal(args.log_format, f"cannot use the database {exc.detail}")
        return 2
    except HomeInUse as exc:
        fatal(args.log_format, f"cannot start: {exc.detail}")
        return 2
    except OSError as exc:
        fatal(args.log_format, f"cannot start: {exc}")
        return 1
    if lost is not None:
        from daemon.jobs.ray_backend import EXIT_RAY_HEAD_LOST

        fatal(args.log_format, f"stopped, exit status {EXIT_RAY_HEAD_LOST}: {lost}")
        return EXIT_RAY_HEAD_LOST
    return 0


def fatal(log_format: str, message: str) -> None:
    """The message of an exit on error: a log record with --log-format json (stderr stays JSON lines),
    else a plain line."""
    if log_format == "json":
        logging.getLogger(__name__).critical(message)
    else:
        print(f"vision-evald: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
