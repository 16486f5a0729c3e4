"""The offline demo: a tiny trained Qwen2-VL that finds a red marker on synthetic maps.

``synth`` draws the seeded samples, ``build`` makes the tokenizer / processor / config from transformers'
classes (no hub), ``evaluate`` measures whether the attention producing each answer digit points at the marker.
The trained weights live in ``demo/model`` (``scripts/train_demo.py``), the samples in ``demo/data``.
"""
