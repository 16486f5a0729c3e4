"""Samples load in the Reason-RFT format; bad input gets one clear line."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from attnviz.data import load_sample, read_samples
from attnviz.errors import AttnvizError
from tests.conftest import DEMO_DATA


def _dataset(tmp_path, samples, images=("a.png",)):
    for name in images:
        Image.new("RGB", (56, 56), "white").save(tmp_path / name)
    path = tmp_path / "data.json"
    path.write_text(json.dumps(samples))
    return path


def test_demo_dataset_has_one_and_two_image_samples():
    samples = read_samples(DEMO_DATA / "demo.json")
    assert len(samples) >= 12
    counts = {len(s["image"]) if isinstance(s["image"], list) else 1 for s in samples}
    assert counts == {1, 2}
    for idx in range(len(samples)):
        sample, images = load_sample(DEMO_DATA / "demo.json", DEMO_DATA, idx)
        assert sample.problem.startswith("Based on the following requirements")
        assert all(img.mode == "RGB" for img in images)


def test_single_path_and_list_both_accepted(tmp_path):
    path = _dataset(tmp_path, [{"id": "x", "image": "a.png", "problem": "p"}, {"image": ["a.png"], "problem": "q"}])
    first, imgs = load_sample(path, tmp_path, 0)
    second, _ = load_sample(path, tmp_path, 1)
    assert (first.id, first.image_paths, len(imgs)) == ("x", ["a.png"], 1)
    assert (second.id, second.image_paths) == ("1", ["a.png"])


def test_jsonl_accepted(tmp_path):
    Image.new("RGB", (56, 56)).save(tmp_path / "a.png")
    path = tmp_path / "d.jsonl"
    path.write_text('{"image": "a.png", "problem": "p"}\n{"image": "a.png", "problem": "q"}\n')
    assert load_sample(path, tmp_path, 1)[0].problem == "q"


@pytest.mark.parametrize(
    "samples,idx,message",
    [
        ([{"image": "a.png", "problem": "p"}], 3, "sample_idx=3 is out of range: .* has 1 samples"),
        ([{"image": "a.png"}], 0, "no 'problem' field"),
        ([{"problem": "p"}], 0, "no 'image' field"),
        ([{"image": 5, "problem": "p"}], 0, "'image' must be a path or a list"),
        ([{"image": "missing.png", "problem": "p"}], 0, "missing.png does not exist"),
        ([{"image": ["a.png", "a.png", "a.png"], "problem": "p"}], 0, "has 3 images but max_image_num=2"),
        ({"image": "a.png"}, 0, "must hold a JSON list"),
    ],
)
def test_bad_samples_give_one_clear_line(tmp_path, samples, idx, message):
    path = _dataset(tmp_path, samples)
    with pytest.raises(AttnvizError, match=message) as err:
        load_sample(path, tmp_path, idx)
    assert "\n" not in str(err.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(AttnvizError, match="does not exist"):
        load_sample(tmp_path / "nope.json", tmp_path, 0)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"image": "bad.png", "problem": "p"}]))
    with pytest.raises(AttnvizError, match="cannot be read"):
        load_sample(path, tmp_path, 0)
    path.write_text("{not json")
    with pytest.raises(AttnvizError, match="neither JSON nor JSON lines"):
        read_samples(path)
