"""Layer selection: negative indices, 'all', the video's layer always included, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from attnviz.checks import resolve_layer, resolve_layers
from attnviz.errors import AttnvizError
from attnviz.trace import ImageGeometry, Trace, load_trace, save_trace


@pytest.mark.parametrize("idx,expected", [(0, 0), (3, 3), (-1, 3), (-4, 0)])
def test_resolve_layer(idx, expected):
    assert resolve_layer(idx, 4) == expected


@pytest.mark.parametrize("idx", [4, -5, 28])
def test_layer_out_of_range_names_the_layer_count(idx):
    with pytest.raises(AttnvizError, match=f"layer_idx={idx} is out of range: the model has 4 decoder layers"):
        resolve_layer(idx, 4)


@pytest.mark.parametrize(
    "spec,layer,expected", [(None, 2, [2]), ("all", 1, [0, 1, 2, 3]), ([0, -1], 1, [0, 1, 3]), ([2, 2], 2, [2])]
)
def test_resolve_layers(spec, layer, expected):
    assert resolve_layers(spec, layer, 4) == expected


def test_resolve_layers_rejects_other_words():
    with pytest.raises(AttnvizError, match="capture.layers='some'"):
        resolve_layers("some", 0, 4)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_trace_round_trip(tmp_path, dtype):
    rows = np.random.default_rng(0).random((3, 6)).astype(np.float32)  # (T, S - 1)
    trace = Trace(
        token_ids=[1, 2, 3, 4, 5, 6, 7],
        token_texts=["a", "b", "c", "d", "e", "f", "g"],
        token_kinds=["special", "image", "image", "text", "text", "text", "text"],
        prompt_len=4,
        images=[ImageGeometry(0, 1, 1, 2, 28, 56)],
        rows={0: rows, 3: rows * 2},
    )
    loaded = load_trace(save_trace(trace, tmp_path / "trace", dtype))
    assert loaded.layers == [0, 3] and loaded.n_steps == 3 and loaded.images == trace.images
    assert loaded.token_kinds == trace.token_kinds and loaded.generated_text() == "efg"
    assert loaded.rows[3].dtype == np.dtype(dtype)
    np.testing.assert_allclose(loaded.row(3, 1), 2 * rows[1, :5], rtol=1e-3)
    assert not list((tmp_path / "trace").glob(".*tmp"))


def test_capture_request_resolves_layers_and_heads():
    from attnviz.config import CaptureConfig
    from attnviz.tracing import capture_request

    request = capture_request(CaptureConfig(layers=[0, -1], heads="all", dtype="float32"), 1, 4, "replay")
    assert request.layers == request.head_layers == [0, 1, 3]
    assert (request.dtype, request.mode) == ("float32", "replay")
    assert capture_request(CaptureConfig(), 2, 4).head_layers == []


@pytest.mark.parametrize(
    "field,value,message", [("heads", "some", "capture.heads='some'"), ("dtype", "int8", "capture.dtype='int8'")]
)
def test_capture_request_rejects_bad_values(field, value, message):
    from attnviz.config import CaptureConfig
    from attnviz.tracing import capture_request

    with pytest.raises(AttnvizError, match=message):
        capture_request(CaptureConfig(**{field: value}), 0, 4)
