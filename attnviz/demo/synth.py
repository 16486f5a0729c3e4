"""Seeded synthesis of the demo task: find the red marker on a map-like picture.

A 224x224 picture is 8x8 merged Qwen2-VL cells of 28 px (patch 14 x merge 2), so each cell is one image token
and the answer ``(column,row)`` names exactly one token. The marker lies wholly inside its cell so that the
"right" token is unambiguous. Everything here is pure: same seed, same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 224
CELL = 28  # merged-patch size of Qwen2-VL: patch 14 x spatial merge 2
GRID = IMAGE_SIZE // CELL  # 8 cells per side
SHADE_LOW, SHADE_STEP = 198, 7  # background green per column (west->east), blue per row (north->south)

START_PHRASE = "Based on the following requirements"
PROBLEM_ONE = f"{START_PHRASE}, find the red marker on the map. Give its cell as (column,row)."
PROBLEM_TWO = (
    f"{START_PHRASE}, find the red marker on the maps. Name the image that holds it and give its cell as (column,row)."
)
PROMPT_SUFFIX = "  Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
# Fixed reasoning without coordinates: the digits of the answer must be read off the image, not copied.
THINK = "<think>I look for the red dot on the map.</think>"


@dataclass(frozen=True)
class Difficulty:
    """Drawing parameters; the curriculum moves from easy (big disc, no roads) to the final task."""

    radius: tuple[int, int]  # inclusive marker radius range in px
    roads: tuple[int, int]  # inclusive number of road lines
    blend: float = 0.0  # 1: the whole map wears the marker cell's shade; 0: every cell its own (final)


EASY = Difficulty(radius=(13, 13), roads=(0, 0), blend=1.0)
FINAL = Difficulty(radius=(6, 10), roads=(3, 7), blend=0.0)


@dataclass(frozen=True)
class Sample:
    images: list[Image.Image]  # one or two RGB 224x224 pictures
    target: tuple[int, int]  # (column, row) of the marker's cell, 0..GRID-1
    image_idx: int  # 0-based index of the picture holding the marker

    @property
    def problem(self) -> str:
        return PROBLEM_ONE if len(self.images) == 1 else PROBLEM_TWO

    @property
    def answer(self) -> str:
        return format_answer(self.target, self.image_idx, len(self.images))

    @property
    def solution(self) -> str:
        return f"{THINK}<answer>{self.answer}</answer>"


def format_answer(target: tuple[int, int], image_idx: int, n_images: int) -> str:
    """'(c,r)' for one picture, 'image k (c,r)' (k 1-based) when the model must also say which picture."""
    cell = f"({target[0]},{target[1]})"
    return cell if n_images == 1 else f"image {image_idx + 1} {cell}"


def curriculum(progress: float) -> Difficulty:
    """Difficulty at a fraction of training.

    Marker and roads: easy for the first 15%, final from 50%, linear in between (big discs on bare paper first
    teach the model to find red). Shading: the whole map wears the marker cell's shade at first, so the answer
    can be read off *any* image token and the model learns shade -> digits; the blend then fades to per-cell
    shading by 30%, and only the marker's token still tells the answer: attention has to move onto it. Without
    this, training sat at chance (ln 8 per digit) for hundreds of steps.
    """
    t = min(max((progress - 0.15) / 0.35, 0.0), 1.0)
    blend = min(max(1.0 - (progress - 0.05) / 0.25, 0.0), 1.0)

    def lerp(a: int, b: int) -> int:
        return int(round(a + (b - a) * t))

    return Difficulty(
        radius=(lerp(EASY.radius[0], FINAL.radius[0]), lerp(EASY.radius[1], FINAL.radius[1])),
        roads=(lerp(EASY.roads[0], FINAL.roads[0]), lerp(EASY.roads[1], FINAL.roads[1])),
        blend=blend,
    )


def _background(rng: np.random.Generator, target: tuple[int, int] | None, blend: float) -> Image.Image:
    """Light paper shaded cell by cell like a map's grid squares: green rises to the east, blue to the south.

    Why the shading: the model must say *where* the marker is. Qwen2-VL's vision tower has no absolute position
    embedding and M-RoPE only gives relative offsets; from scratch a tiny model did not find that route within
    our budget. A shade per cell lets the answer be read off the marker's own token, so the attention that
    writes each digit has to land on the marker's cell. `blend` pulls every cell towards the target's shade.
    """
    levels = np.arange(IMAGE_SIZE, dtype=float) // CELL  # (W,) cell index of each pixel column/row
    col, row = target if target is not None else (levels, levels)
    green = np.broadcast_to((blend * col + (1 - blend) * levels)[None, :], (IMAGE_SIZE, IMAGE_SIZE))
    blue = np.broadcast_to((blend * row + (1 - blend) * levels)[:, None], (IMAGE_SIZE, IMAGE_SIZE))
    shade = SHADE_LOW + SHADE_STEP * np.stack([green, blue], axis=-1)  # (H, W, 2)
    base = np.concatenate([np.full((IMAGE_SIZE, IMAGE_SIZE, 1), 244.0), shade], axis=-1)  # (H, W, 3)
    base = base + rng.integers(-2, 3, size=3)
    noise = rng.integers(-4, 5, size=(IMAGE_SIZE, IMAGE_SIZE, 1))
    pixels = np.clip(np.round(base) + noise, 0, 255).astype(np.uint8)  # (H, W, 3)
    return Image.fromarray(pixels, mode="RGB")


def _draw_roads(draw: ImageDraw.ImageDraw, rng: np.random.Generator, count: int) -> None:
    """Grey straight roads from one border to another (never red, so the marker stays the only red)."""
    for _ in range(count):
        side_a, side_b = rng.choice(4, size=2, replace=False)
        points = [_border_point(rng, int(side)) for side in (side_a, side_b)]
        grey = int(rng.integers(90, 170))
        draw.line(points, fill=(grey, grey, grey), width=int(rng.integers(2, 6)))


def _border_point(rng: np.random.Generator, side: int) -> tuple[int, int]:
    pos = int(rng.integers(0, IMAGE_SIZE))
    return [(pos, 0), (IMAGE_SIZE - 1, pos), (pos, IMAGE_SIZE - 1), (0, pos)][side]


def _draw_marker(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cell: tuple[int, int], radius: int) -> None:
    """A red disc wholly inside `cell` (column, row), centre offset at random within the cell."""
    cx = cell[0] * CELL + int(rng.integers(radius, CELL - radius + 1))
    cy = cell[1] * CELL + int(rng.integers(radius, CELL - radius + 1))
    red = (int(rng.integers(220, 231)), int(rng.integers(15, 26)), int(rng.integers(15, 26)))
    draw.ellipse([cx - radius, cy - radius, cx + radius - 1, cy + radius - 1], fill=red)


def draw_map(rng: np.random.Generator, level: Difficulty, marker: bool = True) -> tuple[Image.Image, tuple]:
    """One picture; returns (image, (column, row)) or (image, ()) when drawn without a marker."""
    cell = tuple(int(v) for v in rng.integers(0, GRID, size=2)) if marker else None
    image = _background(rng, cell, level.blend if marker else 0.0)
    draw = ImageDraw.Draw(image)
    _draw_roads(draw, rng, int(rng.integers(level.roads[0], level.roads[1] + 1)))
    if cell is None:
        return image, ()
    _draw_marker(draw, rng, cell, int(rng.integers(level.radius[0], level.radius[1] + 1)))
    return image, cell


def make_sample(rng: np.random.Generator, level: Difficulty = FINAL, n_images: int = 1) -> Sample:
    """A sample of one or two maps; with two, exactly one (chosen at random) holds the marker."""
    image_idx = int(rng.integers(0, n_images))
    images, target = [], ()
    for k in range(n_images):
        # the marker-free map still gets roads (at least 3), so "which image" is not decided by emptiness
        decoy = Difficulty(level.radius, (max(level.roads[0], 3), max(level.roads[1], 3)), 0.0)
        image, cell = draw_map(rng, level if k == image_idx else decoy, marker=k == image_idx)
        images.append(image)
        target = cell or target
    return Sample(images=images, target=target, image_idx=image_idx)


def make_samples(seed: int, count: int, level: Difficulty = FINAL, n_images: int = 1) -> list[Sample]:
    """`count` samples from one seed (the evaluation and demo sets use seeds apart from training's)."""
    rng = np.random.default_rng(seed)
    return [make_sample(rng, level, n_images) for _ in range(count)]
