"""Studies: one job, many samples, the model loaded once (``samples=``; see docs/studies.md).

:mod:`~attnviz.study.runner` runs a job, :mod:`~attnviz.study.generation` is its model side (batched generation),
:mod:`~attnviz.study.pool` renders in worker processes, :mod:`~attnviz.study.state` reads where each sample stands
(resume), :mod:`~attnviz.study.index` and :mod:`~attnviz.study.merge` write study.json and index.html. Everything
but the generation module is model-free: it imports neither torch nor transformers.
"""
