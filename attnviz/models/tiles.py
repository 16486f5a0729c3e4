"""Tiled images (InternVL, Idefics3/SmolVLM): each tile's cell tokens as one block, stitched back into one grid."""

from __future__ import annotations

from attnviz.errors import AttnvizError


def stitch_tiles(tile_starts: list[int], rows: int, cols: int, side: int) -> list[int]:
    """Sequence positions of a ``rows x cols`` grid of tiles, each ``side x side`` tokens in raster order from
    ``tile_starts[t]`` (tiles row-major), as the cells of one ``rows·side x cols·side`` grid, raster order."""
    if len(tile_starts) != rows * cols:
        raise AttnvizError(f"{len(tile_starts)} tiles do not fill a {rows}x{cols} tile grid")
    return [
        tile_starts[(r // side) * cols + c // side] + (r % side) * side + c % side
        for r in range(rows * side)
        for c in range(cols * side)
    ]
