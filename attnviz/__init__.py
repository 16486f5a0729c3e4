"""attnviz: what a vision-language model looked at, token by token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AttentionVisualizer", "Trace", "load_trace"]

if TYPE_CHECKING:
    from attnviz.trace import Trace, load_trace
    from attnviz.visualizer import AttentionVisualizer


def __getattr__(name: str) -> Any:
    # Lazy: `import attnviz` stays light (no torch) for code that only reads traces.
    if name == "AttentionVisualizer":
        from attnviz.visualizer import AttentionVisualizer

        return AttentionVisualizer
    if name in ("Trace", "load_trace"):
        from attnviz import trace

        return getattr(trace, name)
    raise AttributeError(name)
