"""``study.json`` and ``index.html`` of a study job: every sample's status, paths and timings, and what the job
cost (model loads, generation, rendering). Rewritten atomically as samples finish (at most every few seconds)
and at the end; each sample's own metadata.json stays the record a re-run trusts. Model-free.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnviz.files import INDEX_HTML, METADATA_NAME
from attnviz.metadata import COMPLETE, FAILED, RunMetadata
from attnviz.outputs import write_json_atomic
from attnviz.study.selection import StudyItem
from attnviz.study.state import SAMPLES_DIR

STUDY_JSON = "study.json"
PENDING, RUNNING, INCOMPLETE = "pending", "running", "incomplete"
WRITE_EVERY_S = 5.0


def entry_of(item: StudyItem) -> dict[str, Any]:
    return {"index": item.index, "id": item.id, "dir": f"{SAMPLES_DIR}/{item.name}", "video": item.video,
            "status": PENDING, "error": None}


def files_of(run_dir: Path, meta: RunMetadata) -> dict[str, str]:
    """A complete sample's files that exist, and its metadata.json."""
    present = {k: v for k, v in meta.files.items() if isinstance(v, str) and (run_dir / v).exists()}
    return {**present, "metadata": METADATA_NAME}


def outcome(counts: Counter, n: int) -> str:
    """complete: every sample; failed: some sample failed; incomplete: some never finished (the job stopped)."""
    if counts.get(COMPLETE, 0) == n:
        return COMPLETE
    return FAILED if counts.get(FAILED, 0) else INCOMPLETE


@dataclass
class Costs:
    """What this run of the job spent (a resumed job counts only its own run)."""

    model_loads: int = 0
    load_s: float = 0.0
    generate_s: float = 0.0  # wall time inside generation (batches)
    render_s: float = 0.0  # summed over samples: worker time (video, pictures, metrics, metadata)
    batches: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StudyIndex:
    """The job's entries in selection order; :meth:`save` writes study.json and index.html."""

    def __init__(self, job_dir: Path, settings: dict[str, Any], items: list[StudyItem]):
        self.job_dir, self.settings = job_dir, settings
        self.entries = {item.index: entry_of(item) for item in items}
        self.costs = Costs()
        self.started = time.perf_counter()
        self.finished_here = 0  # samples this run completed or failed
        self.skipped = 0  # complete when the run began
        self._written = 0.0

    def mark(self, index: int, status: str, **info: Any) -> dict[str, Any]:
        entry = self.entries[index]
        entry.update(status=status, **info)
        if status in (COMPLETE, FAILED):
            self.finished_here += 1
        return entry

    def already_complete(self, index: int, run_dir: Path, meta: RunMetadata) -> None:
        self.skipped += 1
        self.entries[index].update(status=COMPLETE, files=files_of(run_dir, meta), n_generated=meta.n_generated,
                                   timings=meta.timings, resumed=True)

    def counts(self) -> Counter:
        return Counter(entry["status"] for entry in self.entries.values())

    @property
    def n_failed(self) -> int:
        return self.counts().get(FAILED, 0)

    def to_json(self, final: bool) -> dict[str, Any]:
        counts, wall = self.counts(), time.perf_counter() - self.started
        n, costs = len(self.entries), self.costs
        return {
            "status": outcome(counts, n) if final else RUNNING,
            **self.settings,
            "n_samples": n, "n_complete": counts.get(COMPLETE, 0), "n_failed": counts.get(FAILED, 0),
            "n_pending": n - counts.get(COMPLETE, 0) - counts.get(FAILED, 0), "n_skipped": self.skipped,
            "model_loads": costs.model_loads, "load_s": round(costs.load_s, 3),
            "generate_s": round(costs.generate_s, 3), "render_s": round(costs.render_s, 3), "batches": costs.batches,
            "wall_s": round(wall, 3), "samples_per_s": round(self.finished_here / wall, 4) if wall > 0 else None,
            **costs.extra,
            "files": {"index": INDEX_HTML},
            "samples": list(self.entries.values()),
        }

    def save(self, final: bool = False, force: bool = False) -> dict[str, Any] | None:
        """Write study.json and index.html (unless one was written under WRITE_EVERY_S ago and not ``force``)."""
        now = time.perf_counter()
        if not (final or force) and now - self._written < WRITE_EVERY_S:
            return None
        from attnviz.study.page import write_page  # the page's HTML, only when a page is written

        data = self.to_json(final)
        self.job_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.job_dir / STUDY_JSON, data)
        write_page(data, self.job_dir / INDEX_HTML)
        self._written = now
        return data
