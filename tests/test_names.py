"""Names users expect (issue 10, item 4): a checkpoint path is named as ultralytics users think of it,
and an explicit ``name`` (validated like a model name) overrides that for a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.jobs.submissions import Submissions
from evaluation.model_resolution import name_for_path, resolve_model
from vocab.config import Config, PathsConfig
from vocab.errors import InvalidRequest


@pytest.mark.parametrize(("path", "name"), [
    ("/runs/detect/exp7/weights/best.pt", "exp7"),
    ("/runs/detect/exp7/weights/last.pt", "exp7"),
    ("/runs/detect/train/weights/../weights/best.pt", "train"),
    ("/models/my-detector/v3.pt", "my-detector"),
    ("/models/my-detector/current.pt", "my-detector"),
    ("/somewhere/best.pt", "best"),  # not in a run's weights folder: its stem
    ("/somewhere/weights-archive/best.pt", "best"),
    ("/ckpts/yolov8n-finetuned.pt", "yolov8n-finetuned"),
])
def test_name_for_path(path: str, name: str) -> None:
    assert name_for_path(Path(path)) == name


def place(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not loaded here")
    return path


def test_two_runs_best_pt_are_two_models(tmp_path: Path) -> None:
    a = place(tmp_path / "runs" / "exp7" / "weights" / "best.pt")
    b = place(tmp_path / "runs" / "exp8" / "weights" / "best.pt")
    link = tmp_path / "latest.pt"
    link.symlink_to(b)
    names = [resolve_model(str(p), tmp_path / "models", [tmp_path]).name for p in (a, b, link)]
    assert names == ["exp7", "exp8", "latest"]  # a link is named as written, not as its target


async def test_explicit_name_for_a_path_and_its_validation(tmp_path: Path) -> None:
    ckpt = place(tmp_path / "runs" / "exp7" / "weights" / "best.pt")
    place(tmp_path / "models" / "det" / "v1.pt")
    config = Config(paths=PathsConfig(models_root=str(tmp_path / "models"), allowed_roots=(str(tmp_path),)))
    subs = Submissions(config, queue=None)  # type: ignore[arg-type] - resolving never touches the queue
    assert (await subs.resolve_model(str(ckpt))).name == "exp7"
    assert (await subs.resolve_model(str(ckpt), "pedestrians-v2")).name == "pedestrians-v2"
    for bad in ("../up", "a/b", "-x", "x" * 129, "with space"):
        with pytest.raises(InvalidRequest, match="invalid model name"):
            await subs.resolve_model(str(ckpt), bad)
    assert (await subs.resolve_model("det", "det")).name == "det"
    with pytest.raises(InvalidRequest, match="already a model name"):
        await subs.resolve_model("det", "other")


async def test_a_model_name_resolved_to_current_pt_records_the_version_it_holds(tmp_path: Path) -> None:
    """An eval by model name evaluates current.pt: the version recorded is the v<n>.pt whose bytes it holds."""
    models = tmp_path / "models"
    for n, text in ((1, b"one"), (2, b"two"), (3, b"three")):
        place(models / "det" / f"v{n}.pt").write_bytes(text)
    (models / "det" / "current.pt").write_bytes(b"two")
    subs = Submissions(Config(paths=PathsConfig(models_root=str(models), allowed_roots=(str(tmp_path),))),
                       queue=None)  # type: ignore[arg-type] - resolving never touches the queue
    resolved = await subs.resolve_model("det")
    assert (resolved.path.name, resolved.version) == ("current.pt", 2)
    (models / "det" / "current.pt").write_bytes(b"none of them")
    assert (await subs.resolve_model("det")).version is None


@pytest.mark.parametrize(("name", "valid"), [
    ("my-detector", True), ("a.b_c-1", True), ("9lives", True), ("x" * 128, True),
    ("a..b", False), ("..", False), (".hidden", False), ("-dash", False), ("x" * 129, False), ("bad name", False),
])
def test_one_model_name_rule_for_the_watcher_the_api_and_the_config(name: str, valid: bool) -> None:
    """The watcher's candidate test, the API's resolution and the config apply vocab.files' one rule:
    ``a..b`` is refused by each of them alike (it used to pass the watcher and fail the store)."""
    from daemon.watch.watcher import candidate
    from vocab.config import parse_config
    from vocab.errors import ConfigError, NotFound
    from vocab.files import is_model_name

    root = Path("/models")
    assert is_model_name(name) is valid
    assert candidate(root, root / name / "v1.pt") is valid
    if valid:
        with pytest.raises(NotFound):  # past the rule, to the (missing) folder
            resolve_model(name, Path("/nonexistent-root"), [Path("/")])
        parse_config({"models": {name: {"dataset": "/data/d.yaml"}}}, environ={})
    else:
        with pytest.raises(InvalidRequest, match="invalid model name"):
            resolve_model(name, Path("/nonexistent-root"), [Path("/")])
        with pytest.raises(ConfigError, match="invalid model name"):
            parse_config({"models": {name: {"dataset": "/data/d.yaml"}}}, environ={})
