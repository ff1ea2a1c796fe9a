"""The client side of vision-evald: the ``vision-eval`` command and an importable client library.

``vision_eval.client.Client`` (standard library only) and
``vision_eval.aclient.AsyncClient`` (aiohttp) offer the same typed calls:
eval, compare, leaderboard, history, train, jobs, job, cancel, wait, models,
model, promote, rollback. The daemon (packages daemon/, handlers/, store/,
evaluation/) never imports this package.
"""
