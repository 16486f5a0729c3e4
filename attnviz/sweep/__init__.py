"""Sweeps: shared traces (one generation per sample), run-directory layout, the end-of-sweep summary.

``python -m attnviz.sweep <sweep dir>`` rebuilds the summary of a sweep (e.g. one whose launcher was stopped).
"""
