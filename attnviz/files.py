"""Every file and folder name attnviz writes, defined once.

A run directory::

    combined_attention_visualization_layer{L}.mp4   the video (VIDEO_NAME)
    viewer.html  poster.png  attention_share.png   the page and the pictures
    metrics.json  metrics_steps.npz                 grounding metrics and correctness
    metadata.json                                   written last: its status says whether the run is complete
    trace/trace.json  trace/layer_XXX.rows  trace/layer_XXX.heads  trace/image_N.png

A sweep directory adds summary.json, index.html, image_attention_share.png and the shared traces in .traces/.
"""

from __future__ import annotations

VIDEO_NAME = "combined_attention_visualization_layer{layer}.mp4"  # the predecessor's name, kept
METADATA_NAME = "metadata.json"
VIEWER_NAME = "viewer.html"
POSTER_NAME = "poster.png"
SHARE_NAME = "attention_share.png"
METRICS_NAME = "metrics.json"  # grounding metrics per layer and segment (attnviz.run_metrics)
METRICS_STEPS_NAME = "metrics_steps.npz"  # the same per answer step
TRACE_DIR = "trace"
TRACE_HEADER = "trace.json"
BASELINE_NAME = "baseline.npz"  # the generic-prompt image distribution per layer (attnviz.baseline)
INPUT_IMAGE_NAME = "image_{index}.png"  # the run's input images, kept beside the rows

SUMMARY_JSON = "summary.json"
INDEX_HTML = "index.html"
SWEEP_SHARE_PLOT = "image_attention_share.png"
TRACES_DIR = ".traces"  # a sweep's shared traces


def video_name(layer: int) -> str:
    return VIDEO_NAME.format(layer=layer)


def rows_file(layer: int) -> str:
    return f"layer_{layer:03d}.rows"


def heads_file(layer: int) -> str:
    return f"layer_{layer:03d}.heads"


def input_image_name(index: int) -> str:
    return INPUT_IMAGE_NAME.format(index=index)
