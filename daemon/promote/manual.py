"""What a manual promotion (``POST /v1/vision/models/{name}/promote``, ``vision-eval promote``) may install.

Never, whatever ``force`` (409 Conflict with the reason):

- a file that cannot be a checkpoint: empty, truncated, not a zip archive,
  sparse, not an ultralytics checkpoint (``evaluation.checkpoint_meta``);
- a checkpoint of another task than the one ``current.pt`` holds, or with
  other class names;
- a checkpoint whose last evaluation failed for a fault of its own (its
  watcher state is ``failed``).

Overridden by ``force`` with a ``reason`` (else 409 saying so), and then
recorded in the ledger (``Decision.forced``):

- not evaluated yet (no evaluation of those bytes is stored);
- refused by the gates (the newest automatic decision on those bytes refused it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from evaluation.checkpoint_meta import CheckpointMeta, read_checkpoint_meta
from store import checkpoints, promotions, results
from store.database import Database
from vocab.errors import CheckpointError, Conflict, InvalidRequest


async def _meta(path: Path, what: str) -> CheckpointMeta:
    try:
        return await asyncio.to_thread(read_checkpoint_meta, path)
    except CheckpointError as exc:
        raise Conflict(f"{what} cannot be promoted: {exc.detail}") from None


async def check_manual(db: Database, name: str, source: Path, sha: str, current: Path | None,
                       force: bool, reason: str | None) -> str | None:
    """Conflict for a refusal (see module contract); otherwise what ``force`` overrode (None: nothing)."""
    what = source.name
    meta = await _meta(source, what)
    if current is not None:
        held = await _meta(current, f"{what} (current.pt, compared with it,")
        if (meta.task, meta.names) != (held.task, held.names):
            raise Conflict(f"{what} is a {meta.task} model with classes {meta.names}; current.pt of {name} holds a "
                           f"{held.task} model with classes {held.names}: a model folder serves one task and one "
                           "set of classes")
    state, evaluated, decision = await db.read(lambda c: (
        checkpoints.get(c, name, sha), results.latest_of_checkpoint(c, sha, name), promotions.latest_on(c, name, sha)))
    if state is not None and state["state"] == "failed":
        raise Conflict(f"{what} cannot be promoted: its last evaluation failed: {state['last_error']}")
    overridable = None
    if evaluated is None:
        overridable = f"{what} has not been evaluated yet"
    elif decision is not None and decision["decision"] == "refused" and decision["actor"] != "api":
        overridable = f"{what} was refused by the promotion rules (decision {decision['id']}): {decision['reason']}"
    if overridable is None:
        return None
    if not force:
        raise Conflict(f"{overridable}; promote it anyway with force: true and a reason")
    if not reason:
        raise InvalidRequest("force needs a reason: say why this checkpoint is promoted anyway")
    return overridable
