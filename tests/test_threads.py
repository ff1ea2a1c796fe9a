"""Torch threads that fit the machine: ``[workers] torch_threads = 0`` shares the CPUs out among the
workers, and a worker's count survives ultralytics' ``select_device``, which sets its own on every CPU run."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.jobs.workers import WorkerPool, threads_per_worker


@pytest.mark.parametrize(("torch_threads", "workers", "cpus", "expected"), [
    (0, 1, 2, 2),  # one worker takes every core
    (0, 2, 2, 1),  # two share them: one each, never one per core each
    (0, 3, 2, 1),  # more workers than cores: still at least one
    (0, 4, 16, 4),
    (3, 2, 2, 3),  # set by hand: as set
])
def test_zero_shares_the_cpus_out_among_the_workers(torch_threads: int, workers: int, cpus: int,
                                                    expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_per_worker(torch_threads, workers, cpus) == expected


@pytest.mark.parametrize(("omp", "expected"), [("3", 3), ("0", 8), ("", 8), ("many", 8)])
def test_zero_follows_omp_num_threads_when_the_environment_sets_a_count(omp: str, expected: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert threads_per_worker(0, 2, 16) == expected
    assert threads_per_worker(5, 2, 16) == 5  # set by hand: as set, whatever the environment says


def test_a_pool_hands_its_workers_their_share(tmp_path: Any) -> None:
    pool = WorkerPool(2, str(tmp_path), torch_threads=0)
    assert pool.torch_threads == threads_per_worker(0, 2)


def test_pinned_threads_survive_ultralytics_select_device(ultralytics_env: Any) -> None:
    import torch
    from ultralytics.utils import torch_utils

    from evaluation.validator import pin_threads

    before, stock = torch.get_num_threads(), torch_utils.NUM_THREADS
    wanted = stock + 2  # never what select_device would set by itself
    try:
        torch_utils.select_device("cpu", verbose=False)
        assert torch.get_num_threads() == stock  # what a worker was up against: reset on every CPU run
        pin_threads(wanted)
        torch_utils.select_device("cpu", verbose=False)
        assert torch.get_num_threads() == wanted
    finally:
        torch_utils.NUM_THREADS = stock
        torch.set_num_threads(before)
