"""evaluation.checkpoint_meta: a checkpoint's task, names and training imgsz, read without torch and
without running its pickle; every kind of unusable or hostile file refused with a message saying why.

The facts are checked against independent sources: the recipe that made the
committed strong.pt (tests/fixtures/make_fixtures.py: classes red, green,
blue; imgsz 192) and ultralytics itself loading the same file (``YOLO(path)``,
in the heavy tests only). Hand-made checkpoints (``fake_pt``) cover what real
ones rarely show: a task named only by the architecture's head, a mid-training
``last.pt`` (model under ``ema``), and hostile pickles.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaluation.checkpoint_meta import MAX_PICKLE_BYTES, folder_meta, read_checkpoint_meta
from tests.conftest import REPO_ROOT, STRONG_PT
from tests.fixtures.synth import NAMES
from vocab.errors import CheckpointError
from vocab.tasks import TASKS

STRONG_IMGSZ = 192  # tests/fixtures/make_fixtures.py


class FakeModel:
    """Pickled as ``ultralytics.nn.tasks.DetectionModel`` by ``fake_pt`` (its module path is rewritten)."""

    def __init__(self, **state: Any) -> None:
        self.__dict__.update(state)


def fake_pt(path: Path, ckpt: Any, as_class: str = "ultralytics.nn.tasks\nDetectionModel",
            splice: tuple[bytes, bytes] | None = None) -> Path:
    """Write ``ckpt`` as torch would (a zip with ``<archive>/data.pkl``, pickle protocol 2), FakeModel
    pickled under ``as_class``, and ``splice`` = (old, new) replaced in the pickle bytes."""
    data = pickle.dumps(ckpt, protocol=2)
    data = data.replace(f"c{FakeModel.__module__}\n{FakeModel.__qualname__}\n".encode(), f"c{as_class}\n".encode())
    if splice:
        data = data.replace(*splice)
    write_zip(path, {f"{path.stem}/data.pkl": data, f"{path.stem}/version": b"3\n"})
    return path


def write_zip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


def detection_state(**extra: Any) -> dict[str, Any]:
    return {"yaml": {"nc": 2, "yaml_file": "yolov8n.yaml", "head": [[[15, 18, 21], 1, "Detect", ["nc"]]]},
            "names": {0: "cat", 1: "dog"}, **extra}


# --------------------------------------------------------------------------- real checkpoints, no torch


def test_strong_checkpoint_reads_as_its_recipe_made_it() -> None:
    meta = read_checkpoint_meta(STRONG_PT)
    assert (meta.task, meta.ultralytics_task) == ("detection", "detect")
    assert meta.names == NAMES
    assert meta.imgsz == STRONG_IMGSZ
    assert meta.architecture == "yolov8n.yaml" and meta.kpt_shape is None
    assert meta.ultralytics_version == "8.4.190"


def test_reader_imports_neither_torch_nor_ultralytics() -> None:
    code = ("import json, sys; from evaluation.checkpoint_meta import read_checkpoint_meta; "
            f"m = read_checkpoint_meta({str(STRONG_PT)!r}); "
            "print(json.dumps({'meta': m.as_dict(), 'loaded': sorted(n for n in ('torch', 'ultralytics', "
            "'numpy', 'onnx') if n in sys.modules)}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    result = json.loads(out.stdout)
    assert result["loaded"] == []
    assert result["meta"]["names"] == NAMES and result["meta"]["task"] == "detection"


def test_model_folder_is_its_current_checkpoint_else_its_newest_readable_version(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    assert folder_meta(folder) is None
    (folder / "v1.pt").symlink_to(STRONG_PT)
    (folder / "v2.pt").write_bytes(b"")  # newest, unreadable
    assert folder_meta(folder) == read_checkpoint_meta(STRONG_PT)
    fake_pt(folder / "current.pt", {"model": FakeModel(**detection_state()), "train_args": {"task": "pose"}})
    meta = folder_meta(folder)
    assert meta is not None and meta.task == "pose"


# --------------------------------------------------------------------------- unusable files


def _truncated(p: Path) -> None:
    p.write_bytes(STRONG_PT.read_bytes()[: STRONG_PT.stat().st_size // 2])


def _sparse_copy(p: Path) -> None:
    shutil.copyfile(STRONG_PT, p)
    os.truncate(p, STRONG_PT.stat().st_size + (4 << 20))  # a 4 MB hole after the real bytes


def _without_tensor(p: Path) -> None:
    with zipfile.ZipFile(STRONG_PT) as src, zipfile.ZipFile(p, "w") as dst:
        for info in src.infolist():
            if info.filename != "last/data/0":
                dst.writestr(info, src.read(info))


def _hole(p: Path) -> None:
    p.touch()
    os.truncate(p, 1 << 20)  # as `truncate -s 1M` makes it: all hole, no data


def _oversized(p: Path) -> None:
    write_zip(p, {"big/data.pkl": b"\x80\x02N." + b"\x00" * MAX_PICKLE_BYTES})


BAD_FILES: dict[str, tuple[Callable[[Path], Any], str]] = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "truncated": (_truncated, "is truncated: it starts as a zip archive but its end"),
    "text": (lambda p: p.write_text("not a checkpoint\n"), "is not a zip archive"),
    "legacy torch": (lambda p: p.write_bytes(pickle.dumps({"model": 1}, protocol=2)), "legacy (pre-1.6, non-zip)"),
    "sparse (truncate -s)": (_hole, "is a sparse file: it has holes"),
    "sparse tail": (_sparse_copy, "is a sparse file: it has holes"),
    "zip without data.pkl": (lambda p: write_zip(p, {"a/weights.bin": b"123"}), "zip archive with no data.pkl"),
    "missing tensor data": (_without_tensor, "the tensor data of 1 of its"),
    "oversized data.pkl": (_oversized, f"over the {MAX_PICKLE_BYTES} this reader accepts"),
    "garbage data.pkl": (lambda p: write_zip(p, {"a/data.pkl": b"\x80\x02\xff\xfe"}), "data.pkl does not unpickle"),
    "a directory": (lambda p: p.mkdir(), "is not a regular file"),
    "missing": (lambda p: None, "checkpoint not found"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_unusable_file_is_refused_saying_why(tmp_path: Path, kind: str) -> None:
    make, message = BAD_FILES[kind]
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_meta(path)
    assert message in info.value.detail and str(path) in info.value.detail


# --------------------------------------------------------------------------- hand-made checkpoints


def test_task_falls_back_to_the_architectures_head(tmp_path: Path) -> None:
    state = {"yaml": {"head": [[-1, 1, "Classify", ["nc"]]], "yaml_file": "yolov8n-cls.yaml"}, "names": ["a", "b"]}
    meta = read_checkpoint_meta(fake_pt(tmp_path / "cls.pt", {"model": FakeModel(**state)}))
    assert (meta.task, meta.ultralytics_task, meta.names, meta.imgsz) == ("classification", "classify", ["a", "b"], None)


def test_training_args_win_over_the_head_and_ema_over_model(tmp_path: Path) -> None:
    """A mid-training last.pt: ``model`` None, the weights under ``ema``; ``train_args`` say the task."""
    ckpt = {"model": None, "ema": FakeModel(**detection_state()),
            "train_args": {"task": "obb", "imgsz": [320, 640], "data": "/d/data.yaml"}}
    meta = read_checkpoint_meta(fake_pt(tmp_path / "last.pt", ckpt))
    assert (meta.task, meta.names, meta.imgsz, meta.train_data) == ("obb", ["cat", "dog"], 640, "/d/data.yaml")


@pytest.mark.parametrize("ckpt,message", [
    ([1, 2], "not an ultralytics checkpoint: {path} holds a list"),
    ({"state_dict": {}}, "not an ultralytics checkpoint: {path} has no ultralytics model under 'ema' or 'model' "
                         "(found None; keys: state_dict)"),
    ({"model": FakeModel(**detection_state()), "train_args": {"task": "semantic"}},
     "is an ultralytics 'semantic' model; vision-evald knows detect, classify, segment, pose, obb models"),
    ({"model": FakeModel(yaml={"head": [[-1, 1, "RTDETRDecoder", []]]}, names={0: "a"})}, "cannot tell its task"),
    ({"model": FakeModel(**detection_state(names={1: "a"}))}, "has no class names"),
])
def test_checkpoint_that_is_not_usable_says_why(tmp_path: Path, ckpt: Any, message: str) -> None:
    path = fake_pt(tmp_path / "x.pt", ckpt)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_meta(path)
    assert message.format(path=path) in info.value.detail


def test_model_of_another_library_is_not_an_ultralytics_checkpoint(tmp_path: Path) -> None:
    path = fake_pt(tmp_path / "resnet.pt", {"model": FakeModel()}, as_class="torchvision.models.resnet\nResNet")
    with pytest.raises(CheckpointError, match="not an ultralytics checkpoint: .*torchvision.models.resnet.ResNet"):
        read_checkpoint_meta(path)


# --------------------------------------------------------------------------- hostile files


def test_pickled_call_is_never_made(tmp_path: Path) -> None:
    """A pickle that would run ``os.system`` on load: the reader only records the name."""
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return os.system, (f"touch {marker}",)

    path = tmp_path / "exploit.pt"
    write_zip(path, {"exploit/data.pkl": pickle.dumps({"model": Exploit()}, protocol=2)})
    with pytest.raises(CheckpointError, match=r"not an ultralytics checkpoint: .*found a posix\.system object"):
        read_checkpoint_meta(path)
    assert not marker.exists()


def test_memo_index_bomb_costs_no_memory(tmp_path: Path) -> None:
    """LONG_BINPUT with index 2**25 (5 bytes): the C unpickler would allocate and zero a 512 MB memo."""
    path = tmp_path / "bomb.pt"
    write_zip(path, {"bomb/data.pkl": b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 25) + b"."})
    # The peak of this process's own memory (VmHWM): ru_maxrss would carry over a large parent's peak
    # across fork and exec.
    code = ("from evaluation.checkpoint_meta import read_checkpoint_meta\n"
            f"try: read_checkpoint_meta({str(path)!r})\nexcept Exception as e: print(type(e).__name__, e)\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout.splitlines()
    assert out[0].startswith("CheckpointError not an ultralytics checkpoint") and "holds None" in out[0]
    assert int(out[1]) < 150_000  # KiB: a fresh interpreter and the reader, no 512 MB memo


def test_nesting_bomb_is_refused(tmp_path: Path) -> None:
    """Class names nested 100,000 lists deep (built by 1-byte opcodes): refused, not a crash."""
    depth = 100_000
    nested = b"]" * depth + b"a" * (depth - 1)  # EMPTY_LIST x depth, then APPEND each into the one below
    placeholder = b"X" + struct.pack("<I", 6) + b"NESTED"  # BINUNICODE "NESTED", as pickle writes it
    path = fake_pt(tmp_path / "deep.pt", {"model": FakeModel(**detection_state(names="NESTED"))},
                   splice=(placeholder, nested))
    with pytest.raises(CheckpointError, match="too deeply nested"):
        read_checkpoint_meta(path)


# --------------------------------------------------------------------------- against ultralytics itself


@pytest.fixture(scope="module")
def saved_untrained(ultralytics_env: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each task's default architecture built and saved by ultralytics (``Model.save``), never trained."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("saved")
    out = {}
    for task in TASKS.values():
        path = root / f"{task.name}.pt"
        YOLO(task.default_arch, task=task.ultralytics).save(str(path))
        out[task.name] = path
    return out


@pytest.mark.parametrize("task", list(TASKS))
def test_saved_checkpoint_of_every_task_reads_as_ultralytics_loads_it(saved_untrained: dict[str, Path],
                                                                      task: str) -> None:
    from ultralytics import YOLO

    meta = read_checkpoint_meta(saved_untrained[task])
    model = YOLO(str(saved_untrained[task]))
    assert meta.task == task and meta.ultralytics_task == model.task
    assert meta.names == list(model.names.values())
    assert meta.architecture == TASKS[task].default_arch
    assert meta.imgsz is None  # never trained: no train_args
    assert (meta.kpt_shape is not None) == (task == "pose")


def test_strong_checkpoint_reads_as_ultralytics_loads_it(ultralytics_env: Path) -> None:
    from ultralytics import YOLO

    meta, model = read_checkpoint_meta(STRONG_PT), YOLO(str(STRONG_PT))
    assert (meta.ultralytics_task, meta.names, meta.imgsz) == (model.task, list(model.names.values()),
                                                                model.overrides["imgsz"])


def test_other_torch_files_are_not_ultralytics_checkpoints(ultralytics_env: Path, tmp_path: Path) -> None:
    import torch

    layer = torch.nn.Linear(2, 2)
    cases = {"state_dict.pt": (layer.state_dict(), "has no ultralytics model"),
             "dict.pt": ({"model": layer, "epoch": 3}, "found a torch.nn.modules.linear.Linear object"),
             "module.pt": (layer, "holds a torch.nn.modules.linear.Linear object")}
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError) as info:
            read_checkpoint_meta(tmp_path / name)
        assert info.value.detail.startswith("not an ultralytics checkpoint") and message in info.value.detail, name
