"""Capture of the attention rows that produced each generated token, without eager attention."""

from attnviz.capture.attention import CAPTURE_PREFIX, register_capture
from attnviz.capture.recorder import MemorySink, RowRecorder, recording

__all__ = ["CAPTURE_PREFIX", "MemorySink", "RowRecorder", "recording", "register_capture"]
