"""Shared fixtures: an offline ultralytics environment, synthetic datasets, the committed checkpoints,
and evaluations that run once per session and are reused.

The offline environment variables (``YOLO_OFFLINE``, a private
``YOLO_CONFIG_DIR`` with seeded fonts, ...) are set when this file is imported,
i.e. before any test module can import ultralytics, which reads them at import.
Importing this file does NOT import torch or ultralytics: HTTP/daemon tests stay
light. Tests that need ultralytics request ``ultralytics_env`` (directly or via
``run_eval`` / ``strong_eval`` / ...); such tests are marked ``ultralytics``
automatically, so ``pytest -m "not ultralytics"`` skips every heavy test.

Evaluations go through the session-scoped ``run_eval`` helper, which caches on
(checkpoint, dataset, imgsz, batch, device, weights, allow_class_mismatch):
the same evaluation runs at most once per session, whichever test asks first.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from evaluation.offline import configure_environment  # noqa: E402  (light: no ultralytics import)

FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
STRONG_PT = FIXTURES_DIR / "strong.pt"
WEAK_PT = FIXTURES_DIR / "weak.pt"
# The committed checkpoints are trained at imgsz 192 (tests/fixtures/make_fixtures.py).
EVAL_IMGSZ = 192
EVAL_BATCH = 8
EVAL_DEVICE = "cpu"

# One private state dir per pytest process, configured at import time (before ultralytics can be imported).
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="vision-eval-tests-"))
atexit.register(shutil.rmtree, _SESSION_TMP, True)
OFFLINE_STATE_DIR = _SESSION_TMP / "state"
configure_environment(OFFLINE_STATE_DIR)

ULTRALYTICS_FIXTURES = frozenset(
    {"ultralytics_env", "run_eval", "strong_eval", "strong_eval_no_large", "weak_eval"}
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ultralytics: runs ultralytics/torch (model load, validation); deselect with -m 'not ultralytics'",
    )
    config.addinivalue_line(
        "markers", "heavy: starts a daemon, a worker or a browser, or imports torch (make test-fast skips it)",
    )


# What makes a test heavy: a real daemon or other child process, a worker (in-process or Ray), torch.
# Helpers that start one count by name: promotion_harness, and the dashboard's make_env (a real daemon that
# evaluates every task's fixtures; only the fixture's own source is read, not the helpers it calls).
HEAVY_TOKENS = ("Daemon(", "ThreadExecutor", "WorkerPool(", "promotion_harness", "make_env(", "subprocess", "torch",
                "ultralytics", "YOLO(", "evaluation.evaluate", "ray.", "chromium", "webdriver", "getfixturevalue")


def _is_heavy(item: pytest.Item) -> bool:
    """Whether the test or any fixture it uses (transitively) starts a process or needs torch (by its source)."""
    if ULTRALYTICS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        funcs.extend(d.func for d in defs)
    return any(func is not None and _starts_something(func) for func in funcs)


@functools.cache
def _starts_something(func: Callable[..., Any]) -> bool:
    """Whether a function's source names a HEAVY_TOKENS entry (cached: fixtures are shared by many tests)."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    return any(token in source for token in HEAVY_TOKENS)


# The longest modules (real daemons killed and restarted, trainings, fuzzing), started first: `make test`
# hands whole modules to its pytest processes in collection order, so a long one started last would
# stretch the run by its whole length. Only the order changes; every test still runs.
LONGEST_FIRST = ("test_train", "test_ray_backend", "test_cli", "test_spec_examples", "test_recovery",
                 "test_export_parity", "test_mlflow", "test_promotion", "test_dashboard", "test_watcher",
                 "test_rankings", "test_faults_kills", "test_tasks_daemon", "test_daemon_kill9", "test_faults",
                 "test_gates", "test_openapi", "test_metrics", "test_promotion_decisions", "test_train_tasks",
                 "test_door", "test_onnx", "test_offline", "test_api", "test_speed_stats", "test_compare_stats",
                 "test_task_stats", "test_task_metrics", "test_client", "test_home_lock", "test_coco_json",
                 "test_evaluation_metrics", "test_ray_said_out_loud", "test_security")


def _module_rank(item: pytest.Item) -> int:
    name = item.path.stem
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ULTRALYTICS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ultralytics)
        if _is_heavy(item):
            item.add_marker(pytest.mark.heavy)
    items.sort(key=_module_rank)  # stable: each module keeps its own order


_HEAVY_SEEN: set[str] = set()  # what a light test was first caught doing in this process: "torch", "daemon"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """``make test-fast`` (``-m "not heavy"``) promises no torch and no real daemon: the light test after which
    torch is loaded, or a ``vision-evald`` was started, fails, by name (once each per process; this works in
    every pytest-xdist worker too)."""
    from tests.daemon_fixtures import Daemon

    outcome = yield
    report = outcome.get_result()
    markexpr = item.config.getoption("markexpr", "") or ""
    if call.when != "teardown" or "not heavy" not in markexpr:
        return
    caught = {"torch": "torch" in sys.modules, "daemon": Daemon.started > 0}
    for what in [w for w, seen in caught.items() if seen and w not in _HEAVY_SEEN]:
        _HEAVY_SEEN.add(what)
        report.outcome = "failed"
        did = "imported torch" if what == "torch" else "started a real daemon (vision-evald)"
        report.longrepr = f"{item.nodeid} {did} but is selected by -m 'not heavy': mark it heavy"


# --------------------------------------------------------------------------- environment


@pytest.fixture(scope="session")
def offline_state_dir() -> Path:
    """The private ultralytics state dir (config, fonts, runs) of this test session."""
    return OFFLINE_STATE_DIR


@pytest.fixture(scope="session")
def ultralytics_env(offline_state_dir: Path) -> Path:
    """Import ultralytics in the offline environment and apply the offline settings; returns the state dir."""
    from evaluation.offline import apply_settings

    apply_settings(offline_state_dir)
    return offline_state_dir


# --------------------------------------------------------------------------- data and checkpoints


@pytest.fixture(scope="session")
def strong_pt() -> Path:
    """The committed well-trained checkpoint (classes red, green, blue; imgsz 192)."""
    assert STRONG_PT.is_file(), f"missing {STRONG_PT}: run `make fixtures`"
    return STRONG_PT


@pytest.fixture(scope="session")
def weak_pt() -> Path:
    """The committed briefly-trained checkpoint (same classes and recipe as strong.pt)."""
    assert WEAK_PT.is_file(), f"missing {WEAK_PT}: run `make fixtures`"
    return WEAK_PT


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """YAML of a synthetic val split: 24 non-square and square images, some empty, all three size buckets.

    Session-scoped and shared: treat it as read-only (copy it to mutate).
    """
    from tests.fixtures.synth import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synth") / "data", n_val=24, seed=0)


@pytest.fixture(scope="session")
def synth_dataset_no_large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """YAML of a synthetic val split without any large (> 96*96 px) object. Read-only."""
    from tests.fixtures.synth import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synth_no_large") / "data", n_val=24, seed=5, large=False)


# --------------------------------------------------------------------------- evaluations, once per session


@dataclass(frozen=True)
class EvalRun:
    """One ``evaluate()`` call and its artifacts (all under a session tmp dir; read-only)."""

    result: dict[str, Any]
    request: Any  # the vocab.contract.params.EvalSpec evaluated
    device: str
    work_dir: Path
    data_yaml: Path  # the sanitised YAML evaluate() handed to ultralytics
    predictions_path: Path
    evidence_path: Path

    @property
    def predictions(self) -> list[dict[str, Any]]:
        return json.loads(self.predictions_path.read_text())


EvalFn = Callable[..., EvalRun]


@pytest.fixture(scope="session")
def run_eval(ultralytics_env: Path, tmp_path_factory: pytest.TempPathFactory) -> EvalFn:
    """``run_eval(model_path, dataset_yaml, imgsz=192, batch=8, device='cpu', weights=None,
    allow_class_mismatch=False) -> EvalRun``, cached for the session. Errors are not cached."""
    from evaluation.evaluate import evaluate
    from vocab.contract.params import EvalSpec

    cache: dict[tuple[Any, ...], EvalRun] = {}

    def _run(
        model_path: Path,
        dataset_yaml: Path,
        *,
        imgsz: int = EVAL_IMGSZ,
        batch: int = EVAL_BATCH,
        device: str = EVAL_DEVICE,
        weights: dict[str, Any] | None = None,
        allow_class_mismatch: bool = False,
    ) -> EvalRun:
        key = (
            str(Path(model_path).resolve()), str(Path(dataset_yaml).resolve()), imgsz, batch, device,
            json.dumps(weights, sort_keys=True), allow_class_mismatch,
        )
        if key not in cache:
            work = tmp_path_factory.mktemp("eval")
            spec = EvalSpec(
                model_path=str(Path(model_path).resolve()),
                dataset_path=str(Path(dataset_yaml).resolve()),
                model_name=Path(model_path).stem,
                imgsz=imgsz,
                batch=batch,
                weights=weights,
                allow_class_mismatch=allow_class_mismatch,
            )
            predictions, evidence = work / "predictions.json", work / "evidence.npz"
            result = evaluate(spec, work / "job", device=device, predictions_path=predictions,
                              evidence_path=evidence, analysis_dir=work)
            cache[key] = EvalRun(result, spec, device, work / "job", work / "job" / "dataset.yaml", predictions,
                                 evidence)
        return cache[key]

    return _run


@pytest.fixture(scope="session")
def strong_eval(run_eval: EvalFn, strong_pt: Path, synth_dataset: Path) -> EvalRun:
    """strong.pt evaluated on ``synth_dataset`` at imgsz 192, batch 8, CPU, default weights."""
    return run_eval(strong_pt, synth_dataset)


@pytest.fixture(scope="session")
def strong_eval_no_large(run_eval: EvalFn, strong_pt: Path, synth_dataset_no_large: Path) -> EvalRun:
    """strong.pt on ``synth_dataset_no_large``, with a weight on large_object_recall (a null term)."""
    return run_eval(strong_pt, synth_dataset_no_large, weights={"large_object_recall": 0.2})


@pytest.fixture(scope="session")
def weak_eval(run_eval: EvalFn, weak_pt: Path, synth_dataset: Path) -> EvalRun:
    """weak.pt evaluated on ``synth_dataset`` with the same arguments as ``strong_eval``."""
    return run_eval(weak_pt, synth_dataset)
