"""The model registry: every name, its config, and where each variant comes from.

`SNAPSHOT` was generated once from the registry as it was built in loops
(before the timm-style functions replaced them): for each name, the fields
that differ from `VideoNetConfig()`. A variant whose config drifts, or a name
that appears or disappears, fails here.
"""
import dataclasses
import json

import pytest

from gta_core.__main__ import build_parser
from gta_core.commands import PAPER_COST
from gta_core.models import VideoNetConfig, list_models, model_config, model_source, register_model, registry

DEMO = dict(depth=18, width_multiplier=0.25, gta_groups=4)
SLOWFAST = dict(backbone="slowfast", num_frames=64, input_size=256, nl_pool="before", sa_pool="before")
DEMO_SLOWFAST = dict(backbone="slowfast", width_multiplier=0.25, num_frames=32, input_size=112,
                     nl_pool="before", sa_pool="before", gta_groups=4)

SNAPSHOT = {
    "demo_r2d18": dict(DEMO),
    "demo_r2d18_dnl": dict(DEMO, block="dnl"),
    "demo_r2d18_gta": dict(DEMO, block="gta"),
    "demo_r2d18_nl": dict(DEMO, block="nl"),
    "demo_r2d18_sa": dict(DEMO, block="sa"),
    "demo_r2d18_ta": dict(DEMO, block="ta"),
    "demo_r2d18_tape": dict(DEMO, block="tape"),
    "demo_r2d18_tsm": dict(DEMO, tsm=True),
    "demo_r2d18_tsm_dnl": dict(DEMO, block="dnl", tsm=True),
    "demo_r2d18_tsm_gta": dict(DEMO, block="gta", tsm=True),
    "demo_r2d18_tsm_nl": dict(DEMO, block="nl", tsm=True),
    "demo_r2d18_tsm_sa": dict(DEMO, block="sa", tsm=True),
    "demo_r2d18_tsm_ta": dict(DEMO, block="ta", tsm=True),
    "demo_r2d18_tsm_tape": dict(DEMO, block="tape", tsm=True),
    "demo_slowfast_r50": dict(DEMO_SLOWFAST),
    "demo_slowfast_r50_dnl": dict(DEMO_SLOWFAST, block="dnl"),
    "demo_slowfast_r50_gta": dict(DEMO_SLOWFAST, block="gta"),
    "demo_slowfast_r50_nl": dict(DEMO_SLOWFAST, block="nl"),
    "demo_slowfast_r50_sa": dict(DEMO_SLOWFAST, block="sa"),
    "demo_slowfast_r50_ta": dict(DEMO_SLOWFAST, block="ta"),
    "demo_slowfast_r50_tape": dict(DEMO_SLOWFAST, block="tape"),
    "i3d_r50": dict(backbone="i3d", num_classes=400, num_frames=32),
    "i3d_r50_nl": dict(backbone="i3d", num_classes=400, num_frames=32, block="nl",
                       nl_scale=False, nl_pool_ceil=False, nl_out_bias=False),
    "r2d18": dict(depth=18),
    "r2d18_dnl": dict(depth=18, block="dnl"),
    "r2d18_gta": dict(depth=18, block="gta"),
    "r2d18_nl": dict(depth=18, block="nl"),
    "r2d18_sa": dict(depth=18, block="sa"),
    "r2d18_ta": dict(depth=18, block="ta"),
    "r2d18_tape": dict(depth=18, block="tape"),
    "r2d18_tsm": dict(depth=18, tsm=True),
    "r2d18_tsm_dnl": dict(depth=18, block="dnl", tsm=True),
    "r2d18_tsm_gta": dict(depth=18, block="gta", tsm=True),
    "r2d18_tsm_nl": dict(depth=18, block="nl", tsm=True),
    "r2d18_tsm_sa": dict(depth=18, block="sa", tsm=True),
    "r2d18_tsm_ta": dict(depth=18, block="ta", tsm=True),
    "r2d18_tsm_tape": dict(depth=18, block="tape", tsm=True),
    "r2d34": dict(depth=34),
    "r2d34_dnl": dict(depth=34, block="dnl"),
    "r2d34_gta": dict(depth=34, block="gta"),
    "r2d34_nl": dict(depth=34, block="nl"),
    "r2d34_sa": dict(depth=34, block="sa"),
    "r2d34_ta": dict(depth=34, block="ta"),
    "r2d34_tape": dict(depth=34, block="tape"),
    "r2d34_tsm": dict(depth=34, tsm=True),
    "r2d34_tsm_dnl": dict(depth=34, block="dnl", tsm=True),
    "r2d34_tsm_gta": dict(depth=34, block="gta", tsm=True),
    "r2d34_tsm_nl": dict(depth=34, block="nl", tsm=True),
    "r2d34_tsm_sa": dict(depth=34, block="sa", tsm=True),
    "r2d34_tsm_ta": dict(depth=34, block="ta", tsm=True),
    "r2d34_tsm_tape": dict(depth=34, block="tape", tsm=True),
    "r2d50": dict(),
    "r2d50_dnl": dict(block="dnl"),
    "r2d50_gta": dict(block="gta"),
    "r2d50_nl": dict(block="nl"),
    "r2d50_sa": dict(block="sa"),
    "r2d50_ta": dict(block="ta"),
    "r2d50_tape": dict(block="tape"),
    "r2d50_tsm": dict(tsm=True),
    "r2d50_tsm_dnl": dict(block="dnl", tsm=True),
    "r2d50_tsm_gta": dict(block="gta", tsm=True),
    "r2d50_tsm_nl": dict(block="nl", tsm=True),
    "r2d50_tsm_sa": dict(block="sa", tsm=True),
    "r2d50_tsm_ta": dict(block="ta", tsm=True),
    "r2d50_tsm_tape": dict(block="tape", tsm=True),
    "slowfast_r50": dict(SLOWFAST),
    "slowfast_r50_dnl": dict(SLOWFAST, block="dnl"),
    "slowfast_r50_gta": dict(SLOWFAST, block="gta"),
    "slowfast_r50_nl": dict(SLOWFAST, block="nl"),
    "slowfast_r50_sa": dict(SLOWFAST, block="sa"),
    "slowfast_r50_ta": dict(SLOWFAST, block="ta"),
    "slowfast_r50_tape": dict(SLOWFAST, block="tape"),
}


def non_default_fields(config: VideoNetConfig) -> dict:
    default = VideoNetConfig()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(default, f.name)}


def test_the_names_are_the_snapshot():
    assert set(list_models()) == set(SNAPSHOT)
    assert len(SNAPSHOT) == 72


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_each_config_equals_the_snapshot(name):
    assert non_default_fields(model_config(name)) == SNAPSHOT[name]


def test_every_variant_says_where_it_comes_from():
    for name in list_models():
        source = model_source(name)
        assert source.endswith(".") and ": " in source, name
        assert "Table" in source or "not in the paper" in source or "MMAction2" in source, (name, source)
    # The paper has no R2D-18/34, and puts GTA alone on TSM (Table 3 / Table 7).
    assert all("not in the paper" in model_source(n) for n in list_models() if n.startswith(("r2d18", "r2d34")))
    assert "Table 3 / Table 7" in model_source("r2d50_tsm_gta")
    assert model_source("r2d50_tsm_nl").endswith("not in the paper.")
    assert all("CPU demo" in model_source(n) for n in list_models() if n.startswith("demo_"))
    with pytest.raises(KeyError, match="unknown model 'r2d51'"):
        model_source("r2d51")


@pytest.mark.parametrize("name", sorted(PAPER_COST))
def test_table_rows_quote_the_paper_cost(name):
    """A variant that names a row of Table 1 or Table 6 quotes that row's params and FLOPs."""
    params, gflops = PAPER_COST[name]
    assert f"({params} M, {gflops} G at " in model_source(name)


def test_overrides_go_through_from_dict():
    config = model_config("r2d50_gta", num_classes=10, block_positions=[["res4", [0, 2]]])
    assert config.num_classes == 10 and config.block_positions == (("res4", (0, 2)),)
    assert model_config("r2d50_gta").num_classes == 174          # the registered config is untouched
    with pytest.raises(ValueError, match="unknown model settings: colour"):
        model_config("r2d50", colour="red")


def test_register_model_is_a_decorator_keyed_by_the_function_name(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model
    def tiny_gta(**overrides) -> VideoNetConfig:
        """A test variant: not in the paper."""
        return VideoNetConfig.from_dict({"depth": 18, "block": "gta", **overrides})

    assert tiny_gta(num_frames=4).num_frames == 4                  # the function itself is kept
    assert "tiny_gta" in list_models() and model_config("tiny_gta").depth == 18
    assert model_source("tiny_gta") == "A test variant: not in the paper."
    with pytest.raises(ValueError, match="'tiny_gta' is already registered"):
        register_model(tiny_gta)


def test_the_models_command_prints_each_source(capsys):
    for extra in ([], ["--json"]):
        args = build_parser().parse_args(["models", "--filter", "r2d50_tsm_g", *extra])
        assert args.func(args) == 0
        out = capsys.readouterr().out
        row = json.loads(out)[0]["source"] if extra else out.splitlines()[-1]
        assert "R2D-50 + TSM + GTA: Table 3 / Table 7." in row
