"""The daemon reads checkpoint metadata in a helper process (``daemon.app.meta_reader``): the same facts and
the same refusals as a read in this process, a killed helper replaced, nothing left behind by ``close()``,
and a service's misses go to it."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from daemon.app.meta_reader import MetaReader
from evaluation.checkpoint_meta import read_checkpoint_meta, read_uncached
from tests.daemon_fixtures import STRONG_PT, WEAK_PT
from tests.inprocess import running_service
from vocab.errors import CheckpointError


def helpers() -> set[int]:
    """This process's children started by multiprocessing's ``spawn``: the helpers."""
    return {c.pid for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())}


@pytest.fixture
def reader() -> MetaReader:
    r = MetaReader()
    yield r
    r.close()


def test_the_helper_reads_what_this_process_reads_and_refuses_alike(reader: MetaReader, tmp_path: Path) -> None:
    before = helpers()
    for pt in (STRONG_PT, WEAK_PT):
        assert reader.read(Path(pt)) == read_uncached(Path(pt))
    assert helpers() - before, "no helper process did the reading"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(Path(STRONG_PT).read_bytes()[:50_000])
    with pytest.raises(CheckpointError) as here:
        read_uncached(truncated)
    with pytest.raises(CheckpointError) as there:
        reader.read(truncated)
    assert there.value.detail == here.value.detail


def test_a_killed_helper_is_replaced_and_close_leaves_none(reader: MetaReader) -> None:
    before = helpers()
    reader.read(Path(STRONG_PT))
    (first,) = helpers() - before
    killed = psutil.Process(first)
    killed.send_signal(signal.SIGKILL)
    psutil.wait_procs([killed], timeout=10)
    assert reader.read(Path(WEAK_PT)) == read_uncached(Path(WEAK_PT))
    (second,) = helpers() - before
    assert second != first
    helper = psutil.Process(second)
    reader.close()
    _, alive = psutil.wait_procs([helper], timeout=10)
    assert not alive, "the helper outlived close()"
    with pytest.raises(RuntimeError, match="closed"):
        reader.read(Path(STRONG_PT))


async def test_a_service_reads_through_its_helper_while_it_runs(tmp_path: Path) -> None:
    during, after = tmp_path / "during.pt", tmp_path / "after.pt"  # paths no cache of this process has seen
    for path in (during, after):
        path.write_bytes(Path(STRONG_PT).read_bytes())
    before = helpers()
    async with running_service(tmp_path / "daemon"):
        (started,) = helpers() - before  # with the service, before any read
        killed = psutil.Process(started)
        killed.send_signal(signal.SIGKILL)
        psutil.wait_procs([killed], timeout=10)
        assert read_checkpoint_meta(during) == read_uncached(during)
        assert helpers() - before - {started}, "the service's miss was not read by its reader (no new helper)"
    before = helpers()
    assert read_checkpoint_meta(after) == read_uncached(after)
    assert helpers() == before, "after the stop, reads are this process's again"
