"""Which samples a study job runs, where each goes, and which get a video: pure functions of the dataset and the
settings, so every shard of a study computes the same plan.

- ``samples``: ``all``, a slice ``"start:stop[:step]"`` (Python's rules, negatives count from the end), one index,
  or a list of indices (ints) and ids (strings: ``samples='["17"]'`` selects the sample whose id is "17").
- ``shard``/``num_shards``: the job runs every ``num_shards``-th selected sample from the ``shard``-th, so shards
  are balanced when sample sizes drift along the dataset.
- ``videos``: ``all``, ``none`` (or null), the first k of the selection (an int), or a list like ``samples``.
- Directory names: the sample id made filesystem-safe; ids that clash (after cleaning, case-insensitively) get
  ``-<index>`` appended, so names are unique and do not depend on the shard.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attnviz.errors import AttnvizError

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 80
RESERVED = {"", ".", ".."}


@dataclass(frozen=True)
class StudyItem:
    """One sample of a study job."""

    index: int  # position in the dataset
    id: str  # the sample's id (its index when it has none)
    name: str  # its run directory's name, unique within the study
    video: bool  # an MP4 is made for it


def sample_id(raw: Any, index: int) -> str:
    return str(raw.get("id", index)) if isinstance(raw, dict) else str(index)


def select(spec: Any, ids: Sequence[str]) -> list[int]:
    """``samples``/``videos``-style spec -> dataset indices, in the spec's order, without repeats."""
    n = len(ids)
    if isinstance(spec, str) and spec == "all":
        return list(range(n))
    if isinstance(spec, str) and ":" in spec:
        return list(range(n))[_parse_slice(spec)]
    values = list(spec) if isinstance(spec, list | tuple) else [spec]
    where: dict[str, int] = {}
    for i, sid in enumerate(ids):
        where.setdefault(sid, i)
    chosen = [_one(value, n, where) for value in values]
    return list(dict.fromkeys(chosen))


def _parse_slice(spec: str) -> slice:
    parts = spec.split(":")
    try:
        if len(parts) > 3:
            raise ValueError(spec)
        return slice(*(int(p) if p.strip() else None for p in parts))
    except ValueError:
        raise AttnvizError(f"samples={spec!r}: a slice is start:stop or start:stop:step of integers") from None


def _one(value: Any, n: int, where: dict[str, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AttnvizError(f"samples: {value!r} is neither a sample index nor a sample id")
    if isinstance(value, int):
        if not -n <= value < n:
            raise AttnvizError(f"samples: index {value} is out of range: the dataset has {n} samples")
        return value % n
    if value not in where:
        known = ", ".join(list(where)[:5])
        raise AttnvizError(f"samples: no sample has id {value!r} (ids: {known}, ...); integers select by index")
    return where[value]


def shard_of(selection: list[int], shard: int, num_shards: int) -> list[int]:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise AttnvizError(f"shard={shard} num_shards={num_shards}: need num_shards >= 1 and 0 <= shard < num_shards")
    return selection[shard::num_shards]


def video_indices(spec: Any, selection: list[int], ids: Sequence[str]) -> set[int]:
    """Dataset indices that get an MP4: all, none, the first k of the selection, or a samples-style list."""
    if spec is None or spec == "none":
        return set()
    if spec == "all":
        return set(selection)
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 0:
            raise AttnvizError(f"videos={spec}: give a count of 0 or more, all, none or a list")
        return set(selection[:spec])
    return set(select(spec, ids))


def safe_name(text: str) -> str:
    name = UNSAFE.sub("_", text).strip("._-")[:MAX_NAME]
    return name if name not in RESERVED else ""


def dir_names(ids: Sequence[str]) -> list[str]:
    """Per dataset index: a filesystem-safe, unique (also case-insensitively) directory name."""
    base = [safe_name(sid) or f"sample-{i}" for i, sid in enumerate(ids)]
    counts = Counter(name.lower() for name in base)
    names = [name if counts[name.lower()] == 1 else f"{name}-{i}" for i, name in enumerate(base)]
    taken: set[str] = set()
    for i, name in enumerate(names):  # a cleaned id may equal another's "<name>-<index>"
        while name.lower() in taken:
            name = f"{name}_{i}"
        taken.add(name.lower())
        names[i] = name
    return names


def plan_items(raw_samples: Sequence[Any], samples: Any, shard: int, num_shards: int, videos: Any) -> list[StudyItem]:
    """The job's samples, in selection order."""
    if not raw_samples:
        raise AttnvizError("the dataset holds no samples")
    ids = [sample_id(raw, i) for i, raw in enumerate(raw_samples)]
    selection = select(samples, ids)
    with_video = video_indices(videos, selection, ids)
    names = dir_names(ids)
    return [StudyItem(i, ids[i], names[i], i in with_video) for i in shard_of(selection, shard, num_shards)]
