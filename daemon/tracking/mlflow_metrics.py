"""The MLflow outbox on ``GET /metrics``: families drawn from a ``TrackingStatus`` at scrape time.

``daemon.app.prometheus``' snapshot collector yields them (``tracking_families``); the
last error's text is on /healthz only (a label holding free text would make a
new series for every message).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from daemon.tracking.sender import TrackingStatus


def _seconds(iso_time: str | None) -> float | None:
    return None if iso_time is None else datetime.fromisoformat(iso_time).timestamp()


def tracking_families(status: TrackingStatus) -> Iterator[Metric]:
    yield GaugeMetricFamily("vision_evald_mlflow_outbox_depth", "Records waiting to be sent to MLflow.",
                            value=status.outbox_depth)
    yield GaugeMetricFamily("vision_evald_mlflow_outbox_failed",
                            "Records given up (MLflow refused them or their file was gone); see the log.",
                            value=status.outbox_failed)
    yield CounterMetricFamily("vision_evald_mlflow_send_errors", "Failed sends to MLflow since the daemon started.",
                              value=status.send_errors)
    for name, moment, text in (
        ("vision_evald_mlflow_last_success_timestamp_seconds", status.last_success_at,
         "When a record last reached MLflow (Unix time)."),
        ("vision_evald_mlflow_last_error_timestamp_seconds", status.last_error_at,
         "When a send to MLflow last failed (Unix time); the error is on /healthz."),
    ):
        family = GaugeMetricFamily(name, text)
        if (seconds := _seconds(moment)) is not None:
            family.add_metric([], seconds)
        yield family
