"""MLflow tracking: evaluations, comparisons and promotion decisions reported to an MLflow server.

``Tracker`` (tracker.py) is what the service builds and the job path calls;
records wait in a durable outbox (``store.outbox``) and are sent by
``OutboxSender`` (sender.py) through ``MlflowSink`` (sink.py), named as
``mapping`` says. Importing this package never imports mlflow.
"""
