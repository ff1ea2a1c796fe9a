"""``vision-evald``: run the daemon, or check a config file and exit.

Signal handlers only set a flag; the shutdown itself lives in
``Service.close`` (after huey's consumer).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from daemon.config import Config, load_config
from evaluation.errors import ConfigError, DatabaseRefused


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vision-evald", description="Evaluate and promote YOLO checkpoints.")
    parser.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    parser.add_argument("--validate-config", type=Path, metavar="FILE", help="check FILE and exit")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    from daemon.service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = Service(config)
    try:
        await service.start()
        await stop.wait()
        logging.getLogger(__name__).info("stop signal received; shutting down")
    finally:
        await service.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        if args.validate_config is not None:
            load_config(args.validate_config)
            print(f"{args.validate_config}: ok")
            return 0
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"vision-evald: configuration error: {exc.detail}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except DatabaseRefused as exc:
        print(f"vision-evald: cannot use the database {exc.detail}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vision-evald: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
