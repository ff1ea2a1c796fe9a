"""The worker environment that keeps ultralytics offline and quiet (docs/development.md, "Rules the code keeps").

``configure_environment`` must run before the first ``import ultralytics`` in
a process: ultralytics reads these variables at import. ``apply_settings``
runs right after that import, before any train, val or export.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def configure_environment(state_dir: Path) -> Path:
    """Point ultralytics at a private config dir with fonts; switch off network and installs.

    Returns the config dir. Idempotent.
    """
    config_dir = (state_dir / "ultralytics").resolve()
    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    mpl_dir = (state_dir / "matplotlib").resolve()
    mpl_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["MPLCONFIGDIR"] = str(mpl_dir)
    os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")  # weights_only loading; never pip-install from a pickle
    os.environ.setdefault("YOLO_VERBOSE", "False")
    _seed_fonts(config_dir / "Ultralytics")
    return config_dir


def _seed_fonts(target: Path) -> None:
    """Place a TTF where ``check_font`` looks, so it never reaches for the network."""
    missing = [name for name in _FONTS if not (target / name).exists()]
    if not missing:
        return
    # matplotlib (a dependency of ultralytics) ships DejaVuSans: found on disk, not imported (~0.5 s).
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib is not installed: ultralytics needs it, and its font is seeded from it")
    source = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        tmp = target / f".{name}.tmp-{os.getpid()}"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target / name)


def apply_settings(state_dir: Path) -> None:
    """Turn off telemetry and integrations; keep ultralytics' folders inside ``state_dir``."""
    from ultralytics.utils import SETTINGS

    SETTINGS.update(
        sync=False,
        clearml=False,
        comet=False,
        dvc=False,
        mlflow=False,
        raytune=False,
        tensorboard=False,
        wandb=False,
        openvino_msg=False,
        vscode_msg=False,
        datasets_dir=str((state_dir / "datasets").resolve()),
        runs_dir=str((state_dir / "runs").resolve()),
        weights_dir=str((state_dir / "weights").resolve()),
    )
