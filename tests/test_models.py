"""How a client's model string becomes a checkpoint file (evaluation/model_resolution.py), on real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evaluation.model_resolution import resolve_model
from vocab.errors import InvalidRequest, NotFound, PathNotAllowed


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(models root, another allowed root, a folder outside every allowed root)."""
    models, extra, outside = tmp_path / "models", tmp_path / "extra", tmp_path / "outside"
    for d in (models, extra, outside):
        d.mkdir()
    return models, extra, outside


def _touch(path: Path, content: bytes = b"ckpt") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _resolve(model: str, models: Path, extra: Path):
    return resolve_model(model, models, [models, extra])


# --------------------------------------------------------------------------- names


def test_name_resolves_to_current_pt_over_versions(roots):
    models, extra, _ = roots
    _touch(models / "det" / "v1.pt")
    _touch(models / "det" / "v7.pt")
    current = _touch(models / "det" / "current.pt", b"current")
    r = _resolve("det", models, extra)
    assert r.path.resolve() == current.resolve()
    assert r.path.read_bytes() == b"current"
    assert r.name == "det"
    assert r.version is None


def test_name_without_current_takes_highest_version_numerically(roots):
    models, extra, _ = roots
    for n in (1, 2, 9, 10):
        _touch(models / "det" / f"v{n}.pt", f"v{n}".encode())
    _touch(models / "det" / "v11.txt")  # not a checkpoint
    _touch(models / "det" / "v099.pt")  # not a version name (leading zero)
    (models / "det" / "v12.pt").mkdir()  # a folder, not a file
    r = _resolve("det", models, extra)
    assert r.version == 10
    assert r.path.name == "v10.pt"
    assert r.path.read_bytes() == b"v10"
    assert r.name == "det"


def test_v9_alone_then_v10_added(roots):
    models, extra, _ = roots
    _touch(models / "m" / "v9.pt")
    assert _resolve("m", models, extra).version == 9
    _touch(models / "m" / "v10.pt")
    assert _resolve("m", models, extra).version == 10


@pytest.mark.parametrize("setup", ["no folder", "empty folder", "only junk"])
def test_missing_model_is_not_found(roots, setup):
    models, extra, _ = roots
    if setup != "no folder":
        (models / "ghost").mkdir()
    if setup == "only junk":
        _touch(models / "ghost" / "notes.txt")
        _touch(models / "ghost" / "v0.pt")  # v0 is not a version
    with pytest.raises(NotFound) as info:
        _resolve("ghost", models, extra)
    assert "ghost" in info.value.detail


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a..b", "-x", "x" * 129, "a b", "a\x00b", "ü"])
def test_malformed_names_are_invalid(roots, name):
    models, extra, _ = roots
    with pytest.raises(InvalidRequest) as info:
        _resolve(name, models, extra)
    assert not isinstance(info.value, (NotFound, PathNotAllowed))


@pytest.mark.parametrize("model", ["", "   ", "\t\n"])
def test_empty_model_is_invalid(roots, model):
    models, extra, _ = roots
    with pytest.raises(InvalidRequest) as info:
        _resolve(model, models, extra)
    assert "non-empty" in info.value.detail


@pytest.mark.parametrize("model", ["../x", "a/b", "../det/v1.pt", "det/current.pt", "x.pt", "./det"])
def test_strings_with_a_slash_or_pt_are_paths_and_must_be_absolute(roots, model):
    models, extra, _ = roots
    _touch(models / "det" / "v1.pt")
    _touch(models / "det" / "current.pt")
    with pytest.raises(InvalidRequest) as info:
        _resolve(model, models, extra)
    assert not isinstance(info.value, (NotFound, PathNotAllowed))
    assert "absolute" in info.value.detail


def test_relative_path_even_if_it_exists_is_invalid(roots, monkeypatch):
    models, extra, _ = roots
    _touch(models / "det" / "v1.pt")
    monkeypatch.chdir(models)
    with pytest.raises(InvalidRequest, match="absolute"):
        _resolve("det/v1.pt", models, extra)


# --------------------------------------------------------------------------- paths


def test_absolute_paths_under_any_allowed_root(roots):
    models, extra, _ = roots
    v3 = _touch(models / "det" / "v3.pt")
    other = _touch(extra / "run" / "best.pt")
    r = _resolve(str(v3), models, extra)
    assert (r.path, r.name, r.version) == (v3.resolve(), "det", 3)
    r = _resolve(str(other), models, extra)
    assert (r.path, r.name, r.version) == (other.resolve(), "best", None)


def test_path_outside_allowed_roots(roots):
    models, extra, outside = roots
    ckpt = _touch(outside / "evil.pt")
    with pytest.raises(PathNotAllowed):
        _resolve(str(ckpt), models, extra)


def test_dotdot_path_escaping_the_root(roots):
    models, extra, outside = roots
    _touch(outside / "evil.pt")
    with pytest.raises(PathNotAllowed):
        _resolve(f"{models}/../outside/evil.pt", models, extra)


def test_missing_file_under_root_is_not_found(roots):
    models, extra, _ = roots
    with pytest.raises(NotFound):
        _resolve(str(models / "det" / "v5.pt"), models, extra)


def test_a_path_that_is_neither_pt_nor_onnx_is_invalid(roots):
    models, extra, _ = roots
    f = _touch(models / "det" / "weights.engine")
    with pytest.raises(InvalidRequest, match=r"\.pt or \.onnx"):
        _resolve(str(f), models, extra)


def test_symlinked_path_leaving_the_root(roots):
    models, extra, outside = roots
    target = _touch(outside / "evil.pt")
    link = models / "det" / "v4.pt"
    link.parent.mkdir()
    os.symlink(target, link)
    with pytest.raises(PathNotAllowed):
        _resolve(str(link), models, extra)


def test_symlinked_folder_leaving_the_root(roots):
    models, extra, outside = roots
    _touch(outside / "real" / "v1.pt")
    os.symlink(outside / "real", models / "det")
    with pytest.raises(PathNotAllowed):
        _resolve(str(models / "det" / "v1.pt"), models, extra)
    with pytest.raises(PathNotAllowed):
        _resolve("det", models, extra)  # by name, the highest version is a file outside the root


@pytest.mark.parametrize("link_name", ["current.pt", "v2.pt"])
def test_symlinked_checkpoint_of_a_name_leaving_the_root(roots, link_name):
    models, extra, outside = roots
    target = _touch(outside / "evil.pt")
    _touch(models / "det" / "v1.pt")
    os.symlink(target, models / "det" / link_name)
    with pytest.raises(PathNotAllowed):
        _resolve("det", models, extra)


def test_symlink_inside_the_root_is_followed(roots):
    models, extra, _ = roots
    v2 = _touch(models / "det" / "v2.pt", b"two")
    os.symlink(v2, models / "det" / "current.pt")
    r = _resolve("det", models, extra)
    assert r.path.resolve() == v2.resolve()
    assert r.path.read_bytes() == b"two"
