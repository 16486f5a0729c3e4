"""Checkpoints compared on the same answer: ``compare.models`` (base / SFT / RL) read each sample in turn, one model
in memory at a time; each sample gets a comparison video, viewer and record, the job a report (docs/compare.md).

Layout: :mod:`models` (entries -> labelled settings, layer matching), :mod:`runner` (one study per model),
:mod:`together` (``compare.together=true``), :mod:`plan` (the job record, each sample's comparison),
:mod:`sample` / :mod:`video` / :mod:`page` (one sample's outputs); the calculations live in
:mod:`attnviz.comparison` (model-free).
"""
