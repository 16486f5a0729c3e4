"""A sweep's overrides, parsed once: swept keys, a key's values, the jobs exactly as Hydra's sweeper lists them."""

from __future__ import annotations

import hydra
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from attnviz.sweep.overrides import BASIC_SWEEPER, load_record, parse_sweep, sweep_arguments
from attnviz.sweep.summary import expected_jobs

SWEEPS = {
    "grid": (["layer_idx=0,1,2", "sample_idx=0,1"], None),
    "range": (["layer_idx=range(0,4)"], None),
    "range with a step": (["layer_idx=range(10,0,-3)", "sample_idx=2"], None),
    "choice": (["render.colormap=choice(jet,'magma r')", "sample_idx=0,1"], None),
    "quoted commas and spaces": (["start_phrase='a, b','c d'", "prompt='x,y'", "sample_idx=1,0"], None),
    "fixed overrides mixed in": (["model.path=/ckpt/qwen", "layer_idx=1,2", "+extra=3", "~debug", "video.fps=2"], None),
    "sweeper params": (["sample_idx=0,1,2"], {"layer_idx": "0,1", "render.alpha": 0.5}),
    "a key in params and on the command line": (["layer_idx=5,6", "sample_idx=0,1"], {"layer_idx": "0,1"}),
    "nothing swept": ([], None),
}


def _hydra_jobs(task: list[str], params: dict | None) -> list[list[str]]:
    """What Hydra's own basic sweeper launches (a private class: this test notices when it changes)."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    except ImportError as err:
        pytest.fail(f"hydra's BasicSweeper changed (hydra {hydra.__version__}): {err}; check attnviz.sweep.overrides")
    parsed = OverridesParser.create().parse_overrides(sweep_arguments(task, params))
    try:
        batches = BasicSweeper.split_arguments(parsed, None)
    except (AttributeError, TypeError) as err:
        pytest.fail(f"hydra's BasicSweeper changed (hydra {hydra.__version__}): split_arguments: {err}")
    return [job for batch in batches for job in batch]


@pytest.mark.parametrize(("task", "params"), list(SWEEPS.values()), ids=list(SWEEPS))
def test_jobs_are_expanded_exactly_like_hydras_basic_sweeper(task, params):
    ours = parse_sweep(task, params).jobs()
    assert ours == _hydra_jobs(task, params)  # the same strings, in the same order
    config = OmegaConf.create({"hydra": {"sweeper": {"_target_": BASIC_SWEEPER, "params": params},
                                         "overrides": {"task": task}}})
    assert expected_jobs(config) == ours


def test_expansion_details():
    jobs = parse_sweep(["start_phrase='a, b','c d'", "layer_idx=1"], {"layer_idx": "0,1"}).jobs()
    assert jobs == [["layer_idx=1", "start_phrase='a, b'"], ["layer_idx=1", "start_phrase='c d'"]]
    assert parse_sweep(["layer_idx=range(0,3)", "sample_idx=0,1"]).jobs()[:3] == [
        ["layer_idx=0", "sample_idx=0"], ["layer_idx=0", "sample_idx=1"], ["layer_idx=1", "sample_idx=0"]
    ]  # the first override is the outer loop


def test_only_the_basic_sweeper_is_expanded_and_only_listable_sweeps():
    task = ["layer_idx=0,1"]
    other = OmegaConf.create({"hydra": {"sweeper": {"_target_": "hydra_plugins.optuna.OptunaSweeper"},
                                        "overrides": {"task": task}}})
    assert expected_jobs(other) is None
    assert parse_sweep(["layer_idx=interval(0,4)"]).jobs() is None
    assert parse_sweep(["db=glob(*)"]).jobs() is None  # glob needs Hydra's config loader


@pytest.mark.parametrize(
    ("task", "params", "swept"),
    [
        (["layer_idx=0,1", "sample_idx=3", "+model.path=/a,/b"], None, {"layer_idx", "model.path"}),
        (["sample_idx=3"], {"layer_idx": "range(0,4)"}, {"layer_idx"}),
        (["db=glob(*)", "x=interval(0,1)", "y=1"], None, {"db", "x"}),
        (["skip_existing=true"], None, set()),
    ],
)
def test_swept_keys(task, params, swept):
    assert parse_sweep(task, params).swept_keys() == swept


def test_values_of_one_key_the_last_override_wins():
    sweep = parse_sweep(["layer_idx=3,4", "sample_idx=1"], {"layer_idx": "0,1"})
    assert sweep.values("layer_idx") == [3, 4]
    assert sweep.values("sample_idx") == [1]
    assert sweep.values("render.alpha") == []
    assert parse_sweep(["layer_idx=interval(0,4)"]).values("layer_idx") is None


def test_the_sweep_record_is_parsed_once_per_file_version(tmp_path, monkeypatch):
    assert load_record(tmp_path) is None
    record = {"hydra": {"sweeper": {"params": {"sample_idx": "3,4"}}, "overrides": {"task": ["layer_idx=1,2"]}}}
    OmegaConf.save(OmegaConf.create(record), tmp_path / "multirun.yaml")
    first = load_record(tmp_path)
    assert first is not None and first.swept_keys() == {"layer_idx", "sample_idx"}
    assert load_record(str(tmp_path)) is first  # cached: every job of a sweep asks through the resolver
    record["hydra"]["overrides"]["task"] = ["layer_idx=1,2", "render.alpha=0.1,0.9"]
    OmegaConf.save(OmegaConf.create(record), tmp_path / "multirun.yaml")  # another size: parsed again
    assert load_record(tmp_path).swept_keys() == {"layer_idx", "sample_idx", "render.alpha"}
