"""compare.models entries -> labelled settings, layer matching, and the one-line refusals (no model loads)."""

from __future__ import annotations

import pytest

from attnviz.compare.models import compared_models, labelled, mapped_layers, preset
from attnviz.errors import AttnvizError
from attnviz.schema import ModelConfig


def base() -> ModelConfig:
    return ModelConfig(path="/ckpt/base", name="reason_rft_2b", default_layer=20, max_pixels=1234)


def test_presets_paths_and_mappings_get_their_settings_and_labels():
    out = labelled(["demo", "/ckpt/sft-step500", {"path": "/ckpt/rl", "label": "rl"},
                    {"preset": "demo_untaught", "label": "plain"}], base())
    labels = [label for label, _ in out]
    assert labels == ["demo", "sft-step500", "rl", "plain"]
    demo, sft, rl, plain = (settings for _, settings in out)
    assert demo.path.endswith("demo/model") and demo.default_layer == 3 and demo.max_pixels is None
    # a path inherits the run's model settings, its path replaced
    assert (sft.path, sft.max_pixels, sft.default_layer) == ("/ckpt/sft-step500", 1234, 20)
    assert rl.path == "/ckpt/rl" and rl.max_pixels == 1234
    assert plain.path.endswith("demo/model_untaught")
    assert [s.name for _, s in out] == labels  # the label is the name every output records


def test_preset_reads_the_yaml_over_the_schema():
    demo = preset("demo")
    assert demo.name == "demo" and demo.default_layer == 3 and demo.attn_implementation == "auto"


@pytest.mark.parametrize("entries, message", [
    (["demo"], "a comparison needs 2 or more"),
    (["demo", "demo"], "two models are labelled 'demo'"),
    (["demo", {"path": "/x", "colour": 1}], "unknown key 'colour'"),
    (["demo", {"preset": "nope"}], "no model preset 'nope'"),
    (["demo", 3], "neither a preset name"),
    (["demo", {"path": "/x", "label": "../up"}], "cannot name a folder"),
])
def test_bad_entries_are_refused_in_one_line(entries, message):
    with pytest.raises(AttnvizError, match=message) as err:
        labelled(entries, base())
    assert "\n" not in str(err.value)


def test_equal_depths_match_by_index():
    models = compared_models(["/a", "/b"], base(), 20, lambda path: 28)
    assert [m.layer_match for m in models] == ["index", "index"]
    assert models[1].layer_of(20) == 20 and models[1].layer_of(27) == 27


def test_other_depths_match_by_relative_depth():
    depths = {"/a": 28, "/b": 36}
    models = compared_models(["/a", "/b"], base(), -1, depths.get)
    other = models[1]
    assert other.layer_match == "relative depth"
    assert other.layer_of(0) == 0 and other.layer_of(27) == 35  # first to first, last to last
    assert other.layer_of(14) == round(14 * 35 / 27)
    assert mapped_layers([0, 27], other, models[0], 27) == [0, 35]
    assert mapped_layers("all", other, models[0], 27) == "all"


def test_a_reference_layer_out_of_range_is_refused_before_any_load():
    with pytest.raises(AttnvizError, match="layer_idx=40 is out of range"):
        compared_models(["/a", "/b"], base(), 40, lambda path: 28)
