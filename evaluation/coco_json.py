"""COCO JSON detection files: read, check and locate their images, fast and without torch.

``read_coco`` is what a submission runs: it either returns a ``CocoFile``
whose every image was found (with the size the JSON says) and whose every
annotation names a known image and category and lies inside its image, or
raises ``DatasetError`` naming the first few problems. The conversion into a
YOLO layout (``evaluation.coco_cache``) starts only from a ``CocoFile``.

Classes: the categories in the order of ``categories``, whatever their ids
(ids with gaps such as 1, 2, 5 become 0, 1, 2: ``category_map``). The one
exception is Roboflow's placeholder: Roboflow adds a category named after the
project that is the supercategory of all the others and that no annotation
uses; its own YOLO export of the same project lists only the real classes,
so the placeholder is left out here too (``placeholders``).

Left out as ultralytics' converter leaves them out (``convert_coco``,
``data/converter.py:313-321``): crowd annotations (``iscrowd`` true) and boxes
of zero or negative width or height; ``skipped`` counts them.

Images are looked for, in this order, where real exports put them, and the
first folder that holds every image wins: an explicit ``images_root``;
otherwise the JSON's own folder (Roboflow: ``<split>/_annotations.coco.json``
beside its images; Label Studio: ``result.json`` with ``file_name`` starting
``images/``), ``images/`` beside the JSON, and for a JSON in an
``annotations/`` folder (COCO: ``annotations/instances_<split>.json``; CVAT:
``annotations/instances_default.json``) the folders ``<split>/``,
``images/<split>/`` and ``images/`` beside ``annotations/``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from evaluation.dataset_yaml import IMG_FORMATS
from vocab.errors import DatasetError

MAX_LISTED = 5  # problems named in one error message
EDGE_TOLERANCE = 0.01  # a box may pass its image's edge by 1% of the side, as ultralytics' label check allows
_EXIF_ORIENTATION = 274
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class CocoImage:
    """One image of the JSON: its ``file_name`` (the relative name results use), the file found, its size."""

    file_name: str
    path: Path
    width: int
    height: int


@dataclass
class CocoFile:
    """A checked COCO JSON (see the module contract). ``annotations`` are the converter's input rows:
    ``(image index, class index, [x, y, w, h], iscrowd)``."""

    json_path: Path
    sha256: str
    images_root: Path
    images: list[CocoImage]
    names: list[str]
    category_map: dict[int, int]
    placeholders: list[dict[str, Any]]
    skipped: dict[str, int]
    annotations: list[tuple[int, int, list[float], bool]] = field(repr=False)


class _Problems(list[str]):
    def raise_if_any(self, json_path: Path) -> None:
        if self:
            more = f" (and {len(self) - MAX_LISTED} more)" if len(self) > MAX_LISTED else ""
            raise DatasetError(f"COCO file {json_path} has {len(self)} problem(s): "
                               + "; ".join(self[:MAX_LISTED]) + more)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _load(json_path: Path) -> tuple[dict[str, Any], str]:
    try:
        raw = json_path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"COCO file not found: {json_path}") from None
    except OSError as exc:
        raise DatasetError(f"cannot read COCO file {json_path}: {exc}") from exc
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"COCO file {json_path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list) or not isinstance(data.get("annotations", []), list):
        raise DatasetError(f"COCO file {json_path} must be an object with 'images', 'annotations' and 'categories' "
                           "lists")
    return data, hashlib.sha256(raw).hexdigest()


def _categories(data: dict[str, Any], problems: _Problems) -> dict[int, str]:
    found: dict[int, str] = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            problems.append(f"categories[{i}] needs an integer 'id' and a string 'name'")
        elif c["id"] in found:
            problems.append(f"category id {c['id']} is used twice")
        else:
            found[c["id"]] = c["name"]
    if not data["categories"]:
        problems.append("'categories' is empty")
    return found


def _placeholders(data: dict[str, Any], used: set[int]) -> list[dict[str, Any]]:
    """Roboflow's placeholder: the one unused category that is the supercategory of every other one."""
    cats = [c for c in data["categories"] if isinstance(c, dict)]
    unused = [c for c in cats if c.get("id") not in used]
    if len(cats) < 2 or len(unused) != 1:
        return []
    top = unused[0]
    others = [c for c in cats if c is not top]
    return [dict(top)] if all(c.get("supercategory") == top.get("name") for c in others) else []


def _file_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "needs a string 'file_name'"
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        return f"file_name {name!r} must be a relative path inside the images folder"
    if name.rpartition(".")[-1].lower() not in IMG_FORMATS:
        return f"file_name {name!r} is not an image type ultralytics reads"
    return None


def _images(data: dict[str, Any], problems: _Problems) -> dict[Any, int]:
    """Image id -> index in ``images``; problems for bad entries, duplicate ids and file names."""
    by_id: dict[Any, int] = {}
    names: set[str] = set()
    for i, im in enumerate(data["images"]):
        ok_id = isinstance(im, dict) and (_is_int(im.get("id")) or isinstance(im.get("id"), str))
        if not ok_id:
            problems.append(f"images[{i}] needs an integer or string 'id'")
            continue
        name_problem = _file_name_problem(im.get("file_name"))
        if name_problem:
            problems.append(f"image {im['id']!r} {name_problem}")
        elif im["file_name"] in names:
            problems.append(f"file_name {im['file_name']!r} is listed twice")
        if not (_is_int(im.get("width")) and _is_int(im.get("height")) and im["width"] > 0 and im["height"] > 0):
            problems.append(f"image {im['id']!r} needs positive integer 'width' and 'height'")
        if im["id"] in by_id:
            problems.append(f"image id {im['id']!r} is used twice")
        by_id[im["id"]] = i
        names.add(str(im.get("file_name")))
    return by_id


def _outside(box: list[float], width: int, height: int) -> bool:
    x, y, w, h = box
    tx, ty = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    return x < -tx or y < -ty or x + w > width + tx or y + h > height + ty


def _label(a: dict[str, Any], i: int) -> str:
    return f"annotation {a['id']!r}" if "id" in a else f"annotations[{i}]"


def _is_box(box: Any) -> TypeGuard[list[float]]:
    return isinstance(box, list) and len(box) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)


def _annotations(data: dict[str, Any], image_ids: dict[Any, int], category_ids: dict[int, str],
                 problems: _Problems) -> tuple[list[tuple[int, Any, list[float], bool]], dict[str, int]]:
    rows: list[tuple[int, Any, list[float], bool]] = []
    skipped = {"crowd": 0, "zero_area": 0}
    seen: set[Any] = set()
    images = data["images"]
    for i, a in enumerate(data.get("annotations", [])):
        if not isinstance(a, dict):
            problems.append(f"annotations[{i}] is not an object")
            continue
        if "id" in a:
            if a["id"] in seen:
                problems.append(f"annotation id {a['id']!r} is used twice")
            seen.add(a["id"])
        box = a.get("bbox")
        if not _is_box(box):
            problems.append(f"{_label(a, i)} needs a 'bbox' of four numbers [x, y, width, height]")
            continue
        index = image_ids.get(a.get("image_id"))
        if index is None:
            problems.append(f"{_label(a, i)} names image_id {a.get('image_id')!r}, which is not in 'images'")
            continue
        if a.get("category_id") not in category_ids:
            problems.append(f"{_label(a, i)} has unknown category_id {a.get('category_id')!r}")
            continue
        crowd = bool(a.get("iscrowd", False))
        im = images[index]
        if crowd:
            skipped["crowd"] += 1
        elif box[2] <= 0 or box[3] <= 0:
            skipped["zero_area"] += 1
        elif _is_int(im.get("width")) and _is_int(im.get("height")) and _outside(box, im["width"], im["height"]):
            problems.append(f"{_label(a, i)} box {box} lies outside its image {im.get('file_name')!r} "
                            f"({im['width']}x{im['height']})")
        rows.append((index, a["category_id"], [float(v) for v in box], crowd))
    return rows, skipped


def candidate_roots(json_path: Path) -> list[Path]:
    """The folders an export's images may be relative to, in the order tried (see the module contract)."""
    here = json_path.parent
    roots = [here, here / "images"]
    if here.name == "annotations":
        split = json_path.stem.removeprefix("instances_")
        roots += [here.parent / split, here.parent / "images" / split, here.parent / "images"]
    return roots


def _find_root(names: list[str], roots: list[Path]) -> tuple[Path, list[str]]:
    """The first root that holds every image, else the one that holds most, and what it lacks."""
    best: tuple[int, Path, list[str]] | None = None
    for root in roots:
        missing = [n for n in names if not (root / n).is_file()]
        if not missing:
            return root, []
        if best is None or len(names) - len(missing) > best[0]:
            best = (len(names) - len(missing), root, missing)
    assert best is not None
    return best[1], best[2]


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as ultralytics sees the image: from the header, turned by its EXIF orientation
    (``exif_size``, data/utils.py:244-253, for the formats it turns without decoding). Header only: a
    PNG's EXIF is read when it precedes the image data (Pillow would decode the image to look further)."""
    from PIL import Image

    with Image.open(path) as im:
        size = im.size
        if im.format in {"JPEG", "MPO", "PNG", "AVIF"} and (im.format != "PNG" or "exif" in im.info) \
                and im.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
            size = size[::-1]
    return size


def _check_files(images: list[CocoImage], problems: _Problems) -> None:
    for im in images:
        try:
            size = image_size(im.path)
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for a file it cannot read
            problems.append(f"image {im.file_name!r} cannot be read ({type(exc).__name__}: {exc})")
            continue
        if size != (im.width, im.height):
            problems.append(f"image {im.file_name!r} is {size[0]}x{size[1]} but the JSON says "
                            f"{im.width}x{im.height}")


def read_coco(json_path: Path, images_root: Path | None = None) -> CocoFile:
    """Read and check a COCO JSON and find its images (see the module contract)."""
    data, sha = _load(json_path)
    problems = _Problems()
    category_ids = _categories(data, problems)
    image_ids = _images(data, problems)
    rows, skipped = _annotations(data, image_ids, category_ids, problems)
    problems.raise_if_any(json_path)
    placeholders = _placeholders(data, {c for _, c, _, _ in rows})
    dropped = {c["id"] for c in placeholders}
    category_map = {cid: i for i, cid in enumerate(c for c in category_ids if c not in dropped)}
    if not category_map:
        raise DatasetError(f"COCO file {json_path} has no category besides Roboflow's placeholder")
    names = [data["images"][i]["file_name"] for i in range(len(data["images"]))]
    roots = [images_root] if images_root is not None else candidate_roots(json_path)
    root, missing = _find_root(names, roots)
    if missing:
        problems.append(f"{len(missing)} of {len(names)} image files not found (looked in "
                        f"{', '.join(map(str, roots))}), e.g. {root / missing[0]}")
        problems.extend(f"image file missing: {root / n}" for n in missing[1:])
    images = [CocoImage(im["file_name"], root / im["file_name"], im["width"], im["height"])
              for im in data["images"]]
    if not missing:
        _check_files(images, problems)
    if not images:
        problems.append("'images' is empty")
    problems.raise_if_any(json_path)
    return CocoFile(
        json_path=json_path, sha256=sha, images_root=root.resolve(), images=images,
        names=[category_ids[c] for c in category_map], category_map=category_map,
        placeholders=placeholders, skipped=skipped,
        annotations=[(i, category_map[c], box, crowd) for i, c, box, crowd in rows],
    )
