"""The domain core: datasets, scoring, metrics, the ultralytics adapter.

No asyncio, no HTTP, no SQL. Importing this package is cheap: only
``evaluation.validator`` and ``evaluation.training`` import torch and
ultralytics, and only worker processes import those two modules.
"""
