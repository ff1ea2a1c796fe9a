"""Run ultralytics' own COCO converter on a prepared JSON (imports ultralytics, hence torch).

``evaluation.coco_cache`` calls ``convert_labels`` in a process that has
already imported ultralytics, and otherwise runs this module as a child
process: ``python -m evaluation.coco_convert <json folder> <save folder>``.
Boxes only (``use_segments=False``: no RLE decoding, so ``convert_coco`` never
reaches its ``check_requirements`` install), class ``category_id - 1``
(``cls91to80=False``).
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert_labels(json_dir: Path, save_dir: Path) -> None:
    """Convert every ``*.json`` in ``json_dir`` into YOLO label files under ``save_dir/labels/<stem>/``."""
    from ultralytics.data.converter import convert_coco

    convert_coco(str(json_dir), str(save_dir), use_segments=False, use_keypoints=False, cls91to80=False)


if __name__ == "__main__":
    convert_labels(Path(sys.argv[1]), Path(sys.argv[2]))
