"""Ragged row files: streamed step by step, published atomically, reloaded lazily from a run directory."""

from __future__ import annotations

import numpy as np
import pytest

import attnviz
from attnviz.errors import AttnvizError
from attnviz.trace import ImageGeometry, Trace, load_trace, save_trace, trace_header
from attnviz.trace_store import RaggedRows, TraceWriter, row_offset

P, T, H = 5, 4, 3  # prompt length, steps, heads


def _rows(rng, heads: bool = False) -> list[np.ndarray]:
    """Step t: a (1, P + t) row or (1, H, P + t) head rows, each summing to 1."""
    out = []
    for t in range(T):
        raw = rng.random((1, H, P + t) if heads else (1, P + t)).astype(np.float32)
        out.append(raw / raw.sum(axis=-1, keepdims=True))
    return out


def _trace(**rows) -> Trace:
    return Trace(
        token_ids=list(range(P + T)), token_texts=[f"t{i}" for i in range(P + T)],
        token_kinds=["special", "image", "image", "text", "text"] + ["text"] * T, prompt_len=P,
        images=[ImageGeometry(0, 1, 1, 2, 28, 56)], **rows,
    )


def _stream(directory, rng, dtype="float32"):
    writer = TraceWriter(directory, layers=[1, 4], head_layers=[4], dtype=dtype)
    rows, heads = _rows(rng), _rows(rng, heads=True)
    for t in range(T):
        for layer in (1, 4):
            writer.write(layer, t, rows[t] * layer, heads[t] if layer == 4 else None)
    return writer, rows, heads


def test_streamed_rows_reload_exactly_with_per_head_rows(tmp_path):
    writer, rows, heads = _stream(tmp_path / "run" / "trace", np.random.default_rng(0))
    writer.finish(trace_header(_trace()))
    trace = attnviz.load_trace(tmp_path / "run")  # the run directory, not only its trace/ folder
    assert trace.layers == [1, 4] and trace.head_layers == [4] and trace.n_steps == T
    for t in range(T):
        np.testing.assert_array_equal(trace.row(4, t), rows[t][0] * 4)
        np.testing.assert_array_equal(trace.head_rows(4, t), heads[t][0])
        assert trace.row(1, t).shape == (P + t,) and trace.head_rows(4, t).shape == (H, P + t)
    with pytest.raises(AttnvizError, match="capture.heads=all"):
        trace.head_rows(1, 0)


def test_ragged_rows_index_like_the_dense_array():
    rng = np.random.default_rng(1)
    rows = [r[0] for r in _rows(rng)]
    ragged = RaggedRows(np.concatenate(rows), P, T)
    dense = np.asarray(ragged)
    assert dense.shape == ragged.shape == (T, P + T - 1) and len(ragged) == T
    for t in range(T):
        np.testing.assert_array_equal(dense[t, : P + t], rows[t])
        assert not dense[t, P + t :].any()
    np.testing.assert_array_equal(ragged[-1], rows[-1])
    np.testing.assert_array_equal(ragged[2, :3], rows[2][:3])
    with pytest.raises(IndexError):
        ragged[T]
    with pytest.raises(ValueError, match="stored values"):
        RaggedRows(np.zeros(7), P, T)


def test_rows_reach_the_disk_as_each_step_arrives(tmp_path):
    writer = TraceWriter(tmp_path, layers=[0], dtype="float16")
    for t, row in enumerate(_rows(np.random.default_rng(2))):
        writer.write(0, t, row, None)
        assert writer.kept_bytes() == 2 * row_offset(t + 1, P)  # nothing held back in memory
    writer.abort()
    assert not list(tmp_path.iterdir())


def test_a_half_written_trace_is_never_read_as_complete(tmp_path):
    directory = tmp_path / "trace"
    save_trace(_trace(rows={0: np.zeros((T, P + T - 1), np.float32)}), directory)
    assert load_trace(directory).n_steps == T
    writer, _, _ = _stream(directory, np.random.default_rng(3))  # a new run starts over the old trace
    with pytest.raises(AttnvizError, match="unfinished trace"):
        load_trace(tmp_path)
    writer.finish(trace_header(_trace()))
    assert load_trace(tmp_path).layers == [1, 4]
    with pytest.raises(AttnvizError, match="holds no trace"):
        load_trace(tmp_path / "elsewhere")


def test_rows_must_arrive_in_step_order(tmp_path):
    writer = TraceWriter(tmp_path, layers=[0])
    rows = _rows(np.random.default_rng(4))
    writer.write(0, 0, rows[0], None)
    with pytest.raises(RuntimeError, match="out of order"):
        writer.write(0, 2, rows[2], None)


def test_float16_ragged_rows_keep_about_half_the_bytes_of_padded_float32(tmp_path):
    prompt_len, steps = 300, 200
    dense = np.random.default_rng(5).random((steps, prompt_len + steps - 1)).astype(np.float32)
    for t in range(steps):
        dense[t, prompt_len + t :] = 0.0
    trace = Trace(list(range(prompt_len + steps)), ["x"] * (prompt_len + steps), ["text"] * (prompt_len + steps),
                  prompt_len, rows={0: dense})
    loaded = load_trace(save_trace(trace, tmp_path, "float16"))
    assert loaded.rows[0].dtype == np.float16
    assert 0.40 < loaded.rows[0].nbytes / dense.nbytes < 0.5
    np.testing.assert_allclose(np.asarray(loaded.rows[0], dtype=np.float32), dense, rtol=1e-3, atol=1e-4)


def test_atomic_write_that_fails_leaves_neither_the_file_nor_its_temp(tmp_path):
    from attnviz.trace import atomic_write

    target = tmp_path / "poster.png"

    def half_then_fail(f):
        f.write(b"half a picture")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda f: f.write(b"whole"))
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["poster.png"]
