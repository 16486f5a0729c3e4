"""A study's plan: which samples (samples=), which shard, which videos (videos=), and safe unique directory names."""

from __future__ import annotations

import pytest

from attnviz.errors import AttnvizError
from attnviz.study.selection import dir_names, plan_items, safe_name, select, shard_of, video_indices

IDS = [f"s{i}" for i in range(10)]


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("all", list(range(10))),
        ("2:5", [2, 3, 4]),
        ("::4", [0, 4, 8]),
        ("-3:", [7, 8, 9]),
        (4, [4]),
        (-1, [9]),
        ([3, 1, 3], [3, 1]),  # spec order, no repeats
        (["s7", 2, "s2"], [7, 2]),
    ],
)
def test_select(spec, expected):
    assert select(spec, IDS) == expected


def test_numeric_ids_are_chosen_as_strings():
    ids = ["17", "3", "5"]
    assert select(["17"], ids) == [0] and select([1], ids) == [1]


@pytest.mark.parametrize(
    "spec,message",
    [(12, "index 12 is out of range: the dataset has 10"), (["nope"], "no sample has id 'nope'"),
     ("1:2:3:4", "a slice is start:stop"), ("a:b", "a slice is start:stop"), ([1.5], "neither a sample index")],
)
def test_bad_selections_are_one_line_errors(spec, message):
    with pytest.raises(AttnvizError, match=message):
        select(spec, IDS)


def test_shards_split_the_selection_without_overlap():
    selection = list(range(10))
    shards = [shard_of(selection, i, 3) for i in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(shards, [])) == selection
    with pytest.raises(AttnvizError, match="shard=3 num_shards=3"):
        shard_of(selection, 3, 3)


def test_videos_all_none_first_k_and_lists():
    selection = [5, 1, 7]
    assert video_indices("all", selection, IDS) == {1, 5, 7}
    assert video_indices("none", selection, IDS) == video_indices(None, selection, IDS) == set()
    assert video_indices(2, selection, IDS) == {5, 1}  # the first k of the selection, whichever shard runs them
    assert video_indices(["s7", 0], selection, IDS) == {7, 0}


def test_directory_names_are_safe_and_unique():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("a b/c:d") == "a_b_c_d"
    names = dir_names(["x/1", "x:1", "Case", "case", "", "..", "ok", "x_1-0"])
    assert names[:4] == ["x_1-0", "x_1-1", "Case-2", "case-3"]
    assert names[4:7] == ["sample-4", "sample-5", "ok"]
    assert len({n.lower() for n in names}) == len(names)  # "x_1-0" was taken by the clash above
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_plan_items_marks_videos_and_keeps_names_across_shards():
    raw = [{"id": f"q{i}", "problem": "p", "image": "a.png"} for i in range(6)] + ["not a dict"]
    shard1 = plan_items(raw, "all", 1, 2, 2)
    assert [(item.index, item.id, item.name, item.video) for item in shard1] == [
        (1, "q1", "q1", True), (3, "q3", "q3", False), (5, "q5", "q5", False)
    ]
    assert plan_items(raw, [6], 0, 1, "all")[0].id == "6"  # a broken sample is planned (and fails alone)
    with pytest.raises(AttnvizError, match="holds no samples"):
        plan_items([], "all", 0, 1, "all")
