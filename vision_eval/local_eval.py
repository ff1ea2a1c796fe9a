"""``vision-eval eval --local``: evaluate in this process, no daemon needed.

The evaluation stack (evaluation/, then torch and ultralytics) is imported by
the command itself, so that importing this module loads none of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vision_eval.progress import ProgressBar
from vocab.contract.params import EvalSpec
from vocab.paths import default_state_dir
from vocab.scoring import validate_weights
from vocab.tasks import task_default_imgsz


def run_local_eval(args: argparse.Namespace) -> int:
    """Resolve MODEL, evaluate it on DATASET, print the result JSON; 0 on success."""
    from evaluation.model_facts import model_facts
    from evaluation.model_resolution import looks_like_path, resolve_model
    from evaluation.offline import apply_settings, configure_environment

    models_root = Path(args.models_root).expanduser()
    given = str(Path(args.model).expanduser().resolve()) if looks_like_path(args.model) else args.model
    resolved = resolve_model(given, models_root, [Path("/")])
    facts = model_facts(resolved.path)
    weights = validate_weights(json.loads(args.weights), facts.task) or None if args.weights else None
    imgsz = args.imgsz or task_default_imgsz(facts.task, facts.trained_imgsz)
    state = default_state_dir()
    configure_environment(state)
    from evaluation.evaluate import evaluate  # imports torch: after the environment is set

    apply_settings(state)
    spec = EvalSpec(model_path=str(resolved.path), dataset_path=str(Path(args.dataset).expanduser().resolve()),
                    model_name=resolved.name, task=facts.task, imgsz=imgsz, batch=args.batch,
                    weights=weights,
                    allow_class_mismatch=args.allow_class_mismatch, split=args.split or "val")
    bar = ProgressBar(f"evaluating {resolved.name}")
    with tempfile.TemporaryDirectory(prefix="vision-eval-") as work:
        try:
            result = evaluate(
                spec, Path(work), device=args.device,
                predictions_path=Path(args.predictions).resolve() if args.predictions else None,
                progress=bar,
            )
        finally:
            bar.close()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
