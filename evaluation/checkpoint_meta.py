"""A checkpoint's facts (task, class names, training image size), read without torch and without running it.

A ``.pt`` written by ``torch.save`` is a zip archive: ``<archive>/data.pkl``
holds the pickled object graph and ``<archive>/data/<key>`` the bytes of each
tensor storage. ``read_checkpoint_meta`` reads ``data.pkl`` only (a few
hundred KB of a checkpoint of any size) and unpickles it with
``_InertUnpickler``: every class the pickle names becomes an inert stand-in
(``Inert``) that records the arguments it was built with and the state it was
given; nothing is imported and no code named by the file runs. Tensor
storages become a placeholder. The unpickler is pickle's pure-Python one: its
memo is a dict, where the C unpickler allocates an array as long as the
largest memo index a file names (five bytes can make it allocate gigabytes).

From the stand-ins it reads what ultralytics itself reads when it loads the
checkpoint (``ultralytics.nn.tasks.load_checkpoint``): the model is
``ckpt["ema"]`` or else ``ckpt["model"]``; its task is the model's ``task``
attribute, else ``ckpt["train_args"]["task"]``, else its own ``args``' task,
else the one its architecture's last head layer names (``yaml_task``, as
``guess_model_task`` does); its class names are ``model.names``; the image
size it was trained at is ``train_args["imgsz"]``.

Every refusal is a ``CheckpointError`` whose message says what is wrong: a
missing, empty, sparse (holes), truncated or non-zip file, a zip without a
``data.pkl`` or without the tensor data it names, a ``data.pkl`` over
``MAX_PICKLE_BYTES`` or that does not unpickle, and a file that is not an
ultralytics checkpoint (message ``not an ultralytics checkpoint: ...``) or
is one of a task vision-evald does not know.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from evaluation.file_cache import FileCache
from evaluation.model_resolution import CURRENT, list_versions
from vocab.errors import CheckpointError, InvalidRequest
from vocab.tasks import BY_ULTRALYTICS, task_of_ultralytics

# Real ultralytics checkpoints' data.pkl: 45 KB (yolov8n-cls) to 315 KB (yolo26x-pose); 4 MB bounds the
# work and memory a hostile file can cost.
MAX_PICKLE_BYTES = 4 << 20
# Their zip directory: ~60 bytes per tensor storage (21 KB for yolov8n's 365 entries); 4 MB bounds what
# zipfile builds for a hostile file's millions of entries.
MAX_DIRECTORY_BYTES = 4 << 20
_DATA_PKL = re.compile(r"[^/]+/data\.pkl")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"  # a pickle's PROTO opcode: torch.save's legacy (pre-zip) format starts so
_METAS: FileCache[CheckpointMeta] = FileCache(max_entries=256)


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about itself."""

    task: str  # vision-evald's task name (vocab.tasks), e.g. "classification"
    ultralytics_task: str  # ultralytics' name of it, e.g. "classify"
    names: list[str]  # class names by index
    imgsz: int | None  # the image size it was trained at; None for a model never trained
    kpt_shape: list[int] | None  # pose: [keypoints, 2 or 3 values each]; None otherwise
    architecture: str | None  # the architecture YAML it was built from, e.g. "yolov8n-cls.yaml"
    train_data: str | None  # the dataset it was trained on, as given to ultralytics
    ultralytics_version: str | None  # the ultralytics release that saved it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Inert:
    """An object of a class the pickle names: the class's dotted name, the arguments it was built with and
    the state it was given. No method of the real class exists here or runs."""

    qualified_name: ClassVar[str] = "?"
    args: tuple[Any, ...]
    state: Any
    items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        obj.items = []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Built by ``__new__``; nothing to do."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEMS on a stand-in of a dict subclass
        self.items.append((key, value))

    def extend(self, values: Any) -> None:  # APPENDS on a stand-in of a list subclass
        self.items.extend(values)


class _InertDict(dict[Any, Any]):
    """``collections.OrderedDict``'s stand-in: a dict that keeps any state it is given (torch's
    ``state_dict()`` carries ``_metadata``)."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


# The only real classes a pickle gets: containers that run no code of the file.
_CONTAINERS: dict[tuple[str, str], type] = {
    ("collections", "OrderedDict"): _InertDict,
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
}


class _InertUnpickler(pickle._Unpickler):
    """Unpickles into stand-ins (see the module contract); records the tensor storage keys it meets."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.classes: dict[str, type[Inert]] = {}
        self.storage_keys: set[str] = set()

    def find_class(self, module: str, name: str) -> type:
        container = _CONTAINERS.get((module, name))
        if container is not None:
            return container
        qualified = f"{module}.{name}"
        if qualified not in self.classes:
            self.classes[qualified] = type("Inert", (Inert,), {"qualified_name": qualified})
        return self.classes[qualified]

    def persistent_load(self, pid: Any) -> Any:
        # torch: ("storage", storage type, key, location, number of elements)
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[2], str):
            self.storage_keys.add(pid[2])
        return None


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """The facts of an ultralytics ``.pt`` checkpoint (see the module contract); CheckpointError otherwise.
    Cached by file identity (``evaluation.file_cache``); a miss is read by ``use_reader``'s reader."""
    p = Path(path)
    return _METAS.get(("meta", str(p)), lambda: (_reader(p), (p,)))


def use_reader(reader: Callable[[Path], CheckpointMeta] | None) -> None:
    """Have the reads that miss the cache done by ``reader`` (the daemon's helper process,
    ``daemon.app.meta_reader``); None: ``read_uncached`` in this process."""
    global _reader
    _reader = reader or read_uncached


def read_uncached(path: Path) -> CheckpointMeta:
    """``read_checkpoint_meta``'s read, without the cache."""
    _check_file(path)
    pickled, prefix, entries = _read_data_pkl(path)
    unpickler = _InertUnpickler(pickled)
    try:
        ckpt = unpickler.load()
    except (RecursionError, MemoryError) as exc:
        raise CheckpointError(f"checkpoint {path}: its data.pkl is too deeply nested or too large to read "
                              f"({type(exc).__name__})") from None
    except Exception as exc:  # hostile or damaged bytes make the unpickler raise many types
        raise CheckpointError(f"checkpoint {path} is corrupt: its data.pkl does not unpickle "
                              f"({type(exc).__name__}: {exc})") from None
    missing = sorted(k for k in unpickler.storage_keys if f"{prefix}/data/{k}" not in entries)
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: the tensor data of {len(missing)} of its "
                              f"{len(unpickler.storage_keys)} storages is missing from the archive "
                              f"(e.g. {prefix}/data/{missing[0]})")
    try:
        return _meta(ckpt, path)
    except (RecursionError, MemoryError) as exc:
        raise CheckpointError(f"checkpoint {path}: its metadata is too deeply nested or too large to read "
                              f"({type(exc).__name__})") from None


_reader: Callable[[Path], CheckpointMeta] = read_uncached


def folder_meta(model_dir: Path) -> CheckpointMeta | None:
    """The facts of a model folder's checkpoint: ``current.pt``, else its newest readable ``v<n>.pt``;
    None when it has no readable checkpoint."""
    candidates = [model_dir / CURRENT] + [p for _, p in sorted(list_versions(model_dir).items(), reverse=True)]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return read_checkpoint_meta(candidate)
            except CheckpointError:
                continue
    return None


def yaml_task(cfg: Any) -> str | None:
    """The ultralytics task an architecture mapping's last head layer names (``guess_model_task``'s rule:
    ``Classify`` -> classify, ``Detect``/``v10Detect`` -> detect, ``Segment`` -> segment, ...); None if none."""
    try:
        head = str(cfg["head"][-1][-2]).lower()
    except (KeyError, IndexError, TypeError):
        return None
    if head in {"classify", "classifier", "cls", "fc"}:
        return "classify"
    rules = (("detect", "detect"), ("semanticsegment", "semantic"), ("segment", "segment"), ("pose", "pose"),
             ("obb", "obb"), ("depth", "depth"))
    return next((task for word, task in rules if word in head), None)


def _check_file(path: Path) -> None:
    """A regular, non-empty file whose bytes are all on disk (no holes)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    if st.st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if st.st_blocks * 512 < st.st_size and _first_hole(path) < st.st_size:
        raise CheckpointError(
            f"checkpoint {path} is a sparse file: it has holes (only {st.st_blocks * 512} of its {st.st_size} "
            "bytes are stored), as an interrupted copy or download or `truncate -s` leaves; copy it again"
        )


def _first_hole(path: Path) -> int:
    """The offset of the file's first hole (its size when it has none). Fewer blocks than bytes alone may be
    a compressing filesystem; SEEK_HOLE tells a real hole."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE)
    except OSError:  # no SEEK_HOLE here: trust the block count
        return 0
    finally:
        os.close(fd)


def _read_data_pkl(path: Path) -> tuple[bytes, str, set[str]]:
    """The bytes of ``<archive>/data.pkl``, the archive prefix and every entry name of the zip."""
    try:
        _check_directory_size(path)
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CheckpointError(_not_a_zip(path)) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    with archive:
        names = archive.namelist()
        found = [n for n in names if _DATA_PKL.fullmatch(n)]
        if len(found) != 1:
            what = "no data.pkl" if not found else f"{len(found)} data.pkl files"
            raise CheckpointError(f"checkpoint {path} is a zip archive with {what}, not a torch checkpoint "
                                  f"(a torch .pt holds <archive>/data.pkl; this one holds {names[:3]})")
        info = archive.getinfo(found[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"checkpoint {path}: its data.pkl is {info.file_size} bytes, over the "
                                  f"{MAX_PICKLE_BYTES} this reader accepts (real ones are under 1 MB)")
        try:
            with archive.open(info) as f:
                data = f.read(MAX_PICKLE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt: its data.pkl cannot be read ({exc})") from None
    if len(data) > MAX_PICKLE_BYTES:
        raise CheckpointError(f"checkpoint {path}: its data.pkl is over the {MAX_PICKLE_BYTES} bytes this "
                              "reader accepts")
    return data, found[0].split("/")[0], set(names)


def _check_directory_size(path: Path) -> None:
    """CheckpointError when the zip's directory (zip64 included) is over ``MAX_DIRECTORY_BYTES``; a file
    without one is left to zipfile to refuse."""
    with open(path, "rb") as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # zipfile's reader of the end record
    size = 0 if end is None else end[5]  # zipfile._ECD_SIZE: the directory's size in bytes
    if size > MAX_DIRECTORY_BYTES:
        raise CheckpointError(f"checkpoint {path}: its zip directory is {size} bytes, over the "
                              f"{MAX_DIRECTORY_BYTES} this reader accepts (real ones are under 1 MB)")


def _not_a_zip(path: Path) -> str:
    """Why a file that zipfile cannot open is not a checkpoint, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        return (f"checkpoint {path} is truncated: it starts as a zip archive but its end (the zip's central "
                "directory) is missing, as an interrupted copy, download or write leaves")
    if head.startswith(_PICKLE_MAGIC):
        return (f"checkpoint {path} is in torch's legacy (pre-1.6, non-zip) format, which this reader does "
                "not open; re-save it with a current torch")
    return f"checkpoint {path} is not a zip archive, so not a torch checkpoint (a .pt is a zip with a data.pkl)"


def _meta(ckpt: Any, path: Path) -> CheckpointMeta:
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"not an ultralytics checkpoint: {path} holds {_kind(ckpt)}, not a dict "
                              "with a 'model'")
    model = ckpt.get("ema") or ckpt.get("model")
    if not (isinstance(model, Inert) and model.qualified_name.startswith("ultralytics.")):
        keys = ", ".join(sorted(str(k) for k in ckpt)[:8])
        raise CheckpointError(f"not an ultralytics checkpoint: {path} has no ultralytics model under 'ema' "
                              f"or 'model' (found {_kind(model)}; keys: {keys})")
    state = _mapping(model)
    train_args = _mapping(ckpt.get("train_args"))
    arch = _mapping(state.get("yaml"))
    ul_task = next((t for t in (state.get("task"), train_args.get("task"), _mapping(state.get("args")).get("task"),
                                yaml_task(arch)) if isinstance(t, str)), None)
    if ul_task is None:
        raise CheckpointError(f"checkpoint {path}: cannot tell its task (no task in its training arguments, no "
                              "known head in its architecture)")
    try:
        task = task_of_ultralytics(ul_task)
    except InvalidRequest:
        raise CheckpointError(f"checkpoint {path} is an ultralytics {ul_task!r} model; vision-evald knows "
                              f"{', '.join(BY_ULTRALYTICS)} models") from None
    return CheckpointMeta(
        task=task.name, ultralytics_task=ul_task, names=_names(state.get("names"), path),
        imgsz=_imgsz(train_args.get("imgsz")), kpt_shape=_kpt_shape(state.get("kpt_shape", arch.get("kpt_shape"))),
        architecture=_text(arch.get("yaml_file")), train_data=_text(train_args.get("data")),
        ultralytics_version=_text(ckpt.get("version")),
    )


def _mapping(value: Any) -> dict[Any, Any]:
    """A dict as it is, or the state dict of a stand-in (a module's ``__dict__``, a namespace); else {}
    (not a mapping, or absent)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, Inert) and isinstance(value.state, dict):
        return value.state
    return {}


def _kind(value: Any) -> str:
    """What a value is, for a message: "a <class> object" for a stand-in, else "None" or "a <type>"."""
    if isinstance(value, Inert):
        return f"a {value.qualified_name} object"
    if value is None:
        return "None"
    return "a dict" if isinstance(value, dict) else f"a {type(value).__name__}"


def _names(raw: Any, path: Path) -> list[str]:
    """Class names by index from a ``{index: name}`` dict or a list (ultralytics' ``check_class_names``)."""
    if isinstance(raw, list) and raw:
        return [str(n) for n in raw]
    if isinstance(raw, dict) and raw and all(isinstance(k, int) for k in raw):
        if sorted(raw) == list(range(len(raw))):
            return [str(raw[i]) for i in range(len(raw))]
    raise CheckpointError(f"checkpoint {path}: its model has no class names (model.names is "
                          f"{_kind(raw)}, not a {{index: name}} mapping from 0)")


def _imgsz(raw: Any) -> int | None:
    """A training ``imgsz``: an int, or [h, w] (ultralytics trains at the larger); None if not given."""
    sizes = raw if isinstance(raw, list | tuple) else [raw]
    if sizes and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        return max(sizes)
    return None


def _kpt_shape(raw: Any) -> list[int] | None:
    if isinstance(raw, list | tuple) and len(raw) == 2 and all(isinstance(v, int) for v in raw):
        return [int(v) for v in raw]
    return None


def _text(raw: Any) -> str | None:
    return raw if isinstance(raw, str) else None
