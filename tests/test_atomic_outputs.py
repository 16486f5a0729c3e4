"""No run is ever half-written: every output arrives by rename, metadata.json last; a killed run is redone."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnviz.app import run
from attnviz.config import PROJECT_ROOT
from attnviz.outputs import prepare_run_dir, read_metadata

VIDEO = "combined_attention_visualization_layer3.mp4"


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory):
    """One demo run with every os.replace recorded, and a start phrase the prompt does not contain."""
    from hydra import compose, initialize_config_dir

    run_dir = tmp_path_factory.mktemp("audited")
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("attnviz").addHandler(handler)
    overrides = [f"output_dir={run_dir}", "video.width=320", "video.height=180", "start_phrase=No such phrase"]
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "replace", lambda src, dst: (renames.append((Path(src), Path(dst))), real_replace(src, dst)))
            with initialize_config_dir(version_base="1.3", config_dir=str(PROJECT_ROOT / "conf")):
                run(compose("config", overrides=overrides))
    finally:
        logging.getLogger("attnviz").removeHandler(handler)
    return run_dir, renames, records


def test_every_output_arrives_by_rename_and_metadata_last(audited_run):
    run_dir, renames, _ = audited_run
    finals = {dst for _, dst in renames}
    written = {p for p in run_dir.rglob("*") if p.is_file()}
    assert written <= finals  # nothing written in place, and no temporary file left behind
    dropped = finals - written  # only the rows of layers measured for the metrics and not rendered
    assert dropped and all(p.parent.name == "trace" and p.suffix == ".rows" for p in dropped)
    for src, dst in renames:
        assert src.parent == dst.parent and src.name.startswith(".") and src != dst
    names = {p.relative_to(run_dir).as_posix() for p in written}
    assert {VIDEO, "viewer.html", "poster.png", "attention_share.png", "trace/trace.json"} <= names
    assert renames[-1][1] == run_dir / "metadata.json" and read_metadata(run_dir)["status"] == "complete"


def test_start_phrase_not_found_falls_back_to_the_last_assistant_turn(audited_run):
    run_dir, _, records = audited_run
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert warnings == ["start_phrase 'No such phrase' not found; the text panel starts at the last assistant turn"]
    meta = read_metadata(run_dir)
    start = meta["text_start"]["position"]
    assert meta["text_start"]["start_phrase_found"] is False
    before = "".join(t["text"] for t in meta["tokens"][:start])
    assert before.endswith("<|im_start|>assistant\n") and start == meta["prompt_len"]


def test_a_new_run_clears_what_an_interrupted_one_left(tmp_path):
    (tmp_path / "trace").mkdir()
    stale = [tmp_path / f".{VIDEO[:-4]}.partial.mp4", tmp_path / ".metadata.json.tmp",
             tmp_path / "trace/.trace.json.tmp", tmp_path / "trace/layer_003.rows.part"]
    kept = [tmp_path / VIDEO, tmp_path / "trace/trace.json", tmp_path / "notes.txt"]
    for path in stale + kept + [tmp_path / "metadata.json"]:
        path.write_text("x")
    prepare_run_dir(tmp_path, keep_metadata=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (tmp_path / "metadata.json").exists()
    prepare_run_dir(tmp_path)  # a new run: the old metadata would describe outputs it replaces
    assert not (tmp_path / "metadata.json").exists()


def _start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, str(PROJECT_ROOT / "run.py"), *overrides, f"hydra.run.dir={run_dir}"]
    # Its own process group: the kill takes ffmpeg too, as a cluster's scheduler would.
    return subprocess.Popen(cmd, cwd=run_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


@pytest.mark.slow
def test_a_run_killed_while_encoding_leaves_no_video_and_is_redone(tmp_path):
    run_dir = tmp_path / "run"
    partial = run_dir / f".{VIDEO[:-4]}.partial.mp4"
    proc = _start(run_dir, "video.width=3840", "video.height=2160")  # big frames: encoding lasts seconds
    try:
        deadline = time.monotonic() + 500
        while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert partial.exists(), f"never saw the video being encoded: {proc.stderr.read()[-2000:]!r}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / VIDEO).exists() and not (run_dir / "metadata.json").exists()
    assert partial.exists()  # the killed run's unfinished video, under its temporary name only

    again = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), "video.width=320", "video.height=180",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["files"]["video"] == VIDEO and (run_dir / VIDEO).stat().st_size > 0
    leftovers = [p.name for p in run_dir.rglob(".*") if p.is_file() and ".hydra" not in p.parts]
    assert leftovers == []
