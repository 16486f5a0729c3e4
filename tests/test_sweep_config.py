"""Sweep configuration: run-directory names, the layers a sweep lists, the launcher presets."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from attnviz.sweep.layout import sweep_subdir
from attnviz.sweep.plan import swept_layers
from tests.conftest import CONF_DIR


def test_run_directories_are_named_by_their_swept_values(tmp_path):
    job = ["layer_idx=20", "sample_idx=3", "model.path=/ckpt/qwen", "skip_existing=true"]
    # without the sweep's record (multirun.yaml), every override but the ones that change no output
    assert sweep_subdir(str(tmp_path), job, 7) == "layer_idx=20,model.path=_ckpt_qwen,sample_idx=3"
    task = ["layer_idx=20,30", "model.path=/ckpt/qwen", "skip_existing=true"]
    record = {"hydra": {"sweeper": {"params": {"sample_idx": "3,4"}}, "overrides": {"task": task}}}
    OmegaConf.save(OmegaConf.create(record), tmp_path / "multirun.yaml")
    assert sweep_subdir(str(tmp_path), job, 7) == "layer_idx=20,sample_idx=3"
    assert sweep_subdir(str(tmp_path), ["model.path=/ckpt/qwen"], 7) == "7"
    long_a = sweep_subdir(str(tmp_path), ["layer_idx=" + "1" * 300], 0)
    long_b = sweep_subdir(str(tmp_path), ["layer_idx=" + "1" * 299 + "2"], 0)
    assert len(long_a.encode()) <= 200 and long_a != long_b
    # glob() lists config-group options only inside Hydra: the key still counts as swept
    record["hydra"]["overrides"]["task"] = [*task, "model=glob(qwen*)"]
    OmegaConf.save(OmegaConf.create(record), tmp_path / "multirun.yaml")
    assert sweep_subdir(str(tmp_path), [*job, "model=qwen2_vl_2b_instruct"], 7) == (
        "layer_idx=20,model=qwen2_vl_2b_instruct,sample_idx=3"
    )


@pytest.mark.parametrize(
    ("overrides", "params", "expected"),
    [
        (["layer_idx=20,10,30", "sample_idx=0,1"], {}, [10, 20, 30]),
        (["layer_idx=range(0,3)"], {}, [0, 1, 2]),
        (["layer_idx=-1"], {}, [-1]),
        (["sample_idx=0,1"], {"layer_idx": "1,2"}, [1, 2]),
        (["sample_idx=0,1", "render.colormap=viridis"], {}, []),
        (["layer_idx=3,4"], {"layer_idx": "1,2"}, [3, 4]),  # the command line replaces params, as in the sweeper
        (["layer_idx=interval(0,4)"], {}, []),  # an optimising sweeper's: captured job by job
    ],
)
def test_swept_layers(overrides, params, expected):
    assert swept_layers(overrides, params) == expected


def _hydra_cfg(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra


@pytest.mark.parametrize(
    ("preset", "target", "checks"),
    [
        ("local_workers", "JoblibLauncher", {"n_jobs": 2}),
        ("local_submitit", "LocalLauncher", {"timeout_min": 120}),
        ("slurm", "SlurmLauncher", {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "array_parallelism": 32}),
    ],
)
def test_launcher_presets_extend_the_plugins_configs(preset, target, checks):
    launcher = _hydra_cfg(f"hydra/launcher={preset}").launcher
    assert launcher._target_.endswith(target)
    assert {key: launcher[key] for key in checks} == checks
    with pytest.raises(ConfigCompositionException):  # typed: a misspelt key fails at compose time
        _hydra_cfg(f"hydra/launcher={preset}", "hydra.launcher.n_jobz=3")


def test_sweep_config_registers_the_summary_callback_and_readable_dirs():
    hydra_cfg = _hydra_cfg()
    assert hydra_cfg.callbacks.sweep_summary._target_ == "attnviz.sweep.callback.SweepSummary"
    assert "attnviz_subdir" in hydra_cfg.sweep._get_node("subdir")._value()
