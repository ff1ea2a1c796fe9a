"""The typed contract of the API: every request, every stored job parameter set and every answer, once.

Declared with pydantic (v2), which also writes their JSON Schema: the OpenAPI
document's components are generated from these models (``handlers.openapi``),
the handlers validate bodies and queries with them (``validation.parse``), and
the job parameters are stored as their JSON and read back with
``model_validate``. Bounds, defaults and enums come from ``vocab.terms``,
``vocab.tasks`` and ``vocab.scoring``; adding a field is one edit here.

- ``fields``: the shared field types (paths, names, splits, imgsz, batch, weights).
- ``requests``: request bodies and query parameters.
- ``params``: what is stored with a job and handed to a worker.
- ``job_results``: what jobs produce (evaluation, comparison, training, decision) and the leaderboard rows.
- ``answers``: the other answers (jobs, models, health, errors).
- ``validation``: ``parse``, a model from untrusted data or an ``InvalidRequest`` saying what is wrong.
- ``json_schema``: their JSON Schema as the OpenAPI document uses it (components, form bodies, parameters).
"""
