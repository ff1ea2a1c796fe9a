"""The image size and batch that ultralytics actually runs for requested ones (no torch here).

``effective_imgsz`` mirrors ultralytics 8.4's ``check_imgsz(imgsz, max_dim=1)``,
which ``BaseValidator.__init__`` applies with the default stride 32: the size
is rounded UP to a multiple of 32, and is at least 32 (330 -> 352, 640 -> 640).
That rounded size is what the val dataloader letterboxes to. ``effective_batch``
mirrors ``build_dataloader``: a batch larger than the dataset is cut to the
number of images. The daemon keys its cache by these before a worker runs; the
worker reports what really ran (``evaluation.validator.run_pass``), and that
is what is stored.
"""

from __future__ import annotations

import math

VAL_STRIDE = 32  # BaseValidator checks imgsz against this default stride


def effective_imgsz(imgsz: int, stride: int = VAL_STRIDE) -> int:
    """``imgsz`` rounded up to a multiple of ``stride``, at least one stride."""
    return max(math.ceil(imgsz / stride) * stride, stride)


def effective_batch(batch: int, images: int) -> int:
    """The batch size of the val dataloader: never more than the number of images."""
    return max(1, min(batch, images))
