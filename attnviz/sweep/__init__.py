"""Sweeps: shared traces (one generation per sample), run-directory layout, the end-of-sweep summary.

A sweep's overrides are parsed in one place (:mod:`attnviz.sweep.overrides`): the keys that name run directories,
the layers one generation captures and the jobs the summary expects all come from it.
``python -m attnviz.sweep <sweep dir>`` rebuilds the summary of a sweep (e.g. one whose launcher was stopped).
"""
