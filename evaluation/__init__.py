"""The domain core: datasets, scoring, metrics, the ultralytics adapter.

No asyncio, no HTTP, no SQL. Importing this package is cheap: only
``evaluation.validator``, ``evaluation.classify`` (and
``evaluation.classification``, which runs it) and ``evaluation.training``
import torch and ultralytics, and only worker processes import them.
"""
