"""HF transformers 4.57 builds a TimeSformer, `save_pretrained` writes it, our CLI imports the folder.

A small TimeSformer (4 frames, 32² crops of 8² patches, 2 layers, 4 heads)
with random weights of unit scale (HF's own init, std 0.02, leaves every
softmax near uniform, which would compare trivially). The clip is 48×32: a
6×4 patch grid, non-square, so the position table is resized as HF does.
(HF's layers take the patch grid's width from config.image_size, so only
the height may differ from the trained size.) Logits agree to 1e-4 of the
largest; the captured SA rows equal HF's `output_attentions`, and the TA
rows (which HF does not return) equal HF's own temporal attention module run
on the input HF fed it, both to 1e-5.
"""
from __future__ import annotations

import pytest
import torch
from einops import rearrange

from gta_core import capture, load_checkpoint
from gta_core.layers.divided import DividedRecord
from gta_core.views import query_view, record_note, temporal_matrices
from tests.helpers import assert_import_refused, assert_same_logits, one_thread, run_cli  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES, SIZE, PATCH, HEADS = 4, 32, 8, 4
LABELS = ["abseiling", "archery", "bowling", "juggling", "yawning"]


def hf_timesformer(frames: int = FRAMES, size: int = SIZE, labels: list[str] = LABELS):
    """TimesformerForVideoClassification, random weights of unit scale, eval mode."""
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    config = TimesformerConfig(
        image_size=size, patch_size=PATCH if size == SIZE else 16, num_frames=frames, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=HEADS, intermediate_size=64, id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = TimesformerForVideoClassification(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, value in model.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                value.copy_(1 + 0.2 * torch.randn(value.shape, generator=generator))
            elif value.dim() >= 2 and "embeddings" not in name:
                value.copy_(torch.randn(value.shape, generator=generator) / value.shape[-1] ** 0.5)
            else:
                value.copy_(0.5 * torch.randn(value.shape, generator=generator))
    return model.eval()


def hf_attentions(model, clip: torch.Tensor):
    """HF's logits, spatial attentions (output_attentions) and temporal ones, per layer.

    HF returns only the spatial weights; the temporal ones come from HF's own
    TimesformerSelfAttention run again, with output_attentions, on the input HF gave it.
    """
    temporal, handles = [], []
    for layer in model.timesformer.encoder.layer:
        module = layer.temporal_attention.attention
        handles.append(module.register_forward_hook(
            lambda mod, args, out: temporal.append(mod.forward(args[0], output_attentions=True)[1])))
    try:
        with torch.no_grad():
            out = model(pixel_values=rearrange(clip, "b c t h w -> b t c h w"), output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    return out.logits, out.attentions, temporal


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timesformer")
    model = hf_timesformer()
    model.save_pretrained(folder / "hf")
    done = run_cli("import", "hf-timesformer", str(folder / "hf"), "--out", str(folder / "ours"))
    assert done.returncode == 0, done.stderr
    return model, load_checkpoint(folder / "ours")


def clip(height: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, FRAMES, height, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("height", [SIZE, 48])
def test_timesformer_logits(imported, height):
    model, checkpoint = imported
    inputs = clip(height, seed=height)
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), hf_attentions(model, inputs)[0])


@pytest.mark.parametrize("dense", [False, True])   # lazy rows (q, k, log-sum-exp) and the softmax's own weights
def test_captured_sa_and_ta_rows_equal_transformers(imported, dense):
    model, checkpoint = imported
    inputs = clip(48, seed=3)
    _, spatial, temporal = hf_attentions(model, inputs)
    result = capture(checkpoint.model, inputs, dense=dense)
    assert sorted(result.records) == ["layer.0", "layer.1"]
    for index, (hf_spatial, hf_temporal) in enumerate(zip(spatial, temporal)):
        record = result.records[f"layer.{index}"]
        assert isinstance(record, DividedRecord) and record.spatial.grid == (6, 4)
        # HF spatial: (B·T, heads, 1 + h·w, 1 + h·w), token 0 the CLS.
        hf_rows = rearrange(hf_spatial, "(b t) n q k -> b t n q k", t=FRAMES).mean(dim=2)
        torch.testing.assert_close(record.spatial.weights, hf_rows[:, :, 1:, 1:], atol=1e-5, rtol=0)
        torch.testing.assert_close(record.cls_key_weight, hf_rows[:, :, 1:, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(record.cls_query_row, hf_rows[:, :, 0, 1:], atol=1e-5, rtol=0)
        # HF temporal: (B·h·w, heads, T, T), patches row-major.
        hf_ta = rearrange(hf_temporal, "(b y x) n q k -> b y x n q k", y=6, x=4).mean(dim=3)
        torch.testing.assert_close(record.temporal.weights, hf_ta, atol=1e-5, rtol=0)
        # Not a trivial comparison: the rows are far from uniform.
        assert record.temporal.weights.max() > 1 / FRAMES + 0.2
        assert record.spatial.weights.max() > 1 / 25 + 0.2
    # SA rows over the patches plus the CLS weight sum to 1.
    sums = record.spatial.weights.sum(dim=-1) + record.cls_key_weight
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-5, rtol=0)



def test_sa_query_dependence_reads_every_patch_querys_whole_row_as_transformers(imported):
    """The score's SA rows: each patch query of a frame (none dropped) over the CLS key and the patches, which
    are HF's own rows (distributions); the score is the one computed from them."""
    from gta_core.query_dependence import block_scores, js_bits

    model, checkpoint = imported
    inputs = clip(48, seed=3)
    hf_spatial = hf_attentions(model, inputs)[1][1]
    hf_rows = rearrange(hf_spatial, "(b t) n q k -> b t n q k", t=FRAMES).mean(dim=2)[:, :, 1:].double()
    record = capture(checkpoint.model, inputs).records["layer.1"]
    problems = record.query_dependence(batch=1)["SA"].problems
    assert [p.num_queries for p in problems] == [6 * 4] * FRAMES
    for t, problem in enumerate(problems):
        torch.testing.assert_close(problem.rows(torch.arange(24)).double(), hf_rows[1, t], atol=1e-5, rtol=0)
    by_hand = sum(float(js_bits(rows, rows.mean(0)).sum()) for rows in hf_rows[1]) / (FRAMES * 24)
    assert block_scores(record, batch=1)["SA"].js == pytest.approx(by_hand, abs=1e-5)
    assert by_hand > 0.02                          # 0.030: rows that differ, not a trivial comparison

def test_timesformer_config_classes_and_views(imported):
    _, checkpoint = imported
    config, arch = checkpoint.config, checkpoint.config.model_config()
    assert (arch.backbone, arch.num_frames, arch.input_size, arch.tsf_layers, arch.tsf_heads) == (
        "timesformer", 4, 32, 2, 4)
    assert config.class_names == LABELS and config.model_name == "HF transformers TimeSformer (2 layers)"
    assert (config.mean, config.std) == ([0.45] * 3, [0.225] * 3)
    result = capture(checkpoint.model, clip(SIZE, seed=4, batch=1))
    record = result.records["layer.1"]
    view = query_view(record, t=2, fy=0.9, fx=0.1)
    assert (view.kind, view.step, view.cell, view.grid) == ("DIVIDED", 2, (3, 0), (4, 4))
    assert view.temporal.shape == (FRAMES,) and view.spatial.shape == (4, 4)
    assert list(temporal_matrices(record)) == ["TA mean over patches and heads"]
    note = record_note(record)
    cls_share = float(record.cls_key_weight[0].mean())
    assert "4 time steps, one input frame each; a 4×4 grid of patches" in note
    assert f"the CLS key takes the rest (on average {cls_share:.2f} of a row here)" in note


def test_a_folder_that_is_not_divided_timesformer_is_refused(tmp_path, capsys, imported):
    model, _ = imported
    model.config.attention_type = "joint_space_time"
    try:
        model.save_pretrained(tmp_path / "joint")
    finally:
        model.config.attention_type = "divided_space_time"
    assert_import_refused(["hf-timesformer", str(tmp_path / "joint")], tmp_path / "out",
                          "attention_type='joint_space_time'; ours is TimeSformer's", capsys)
    (tmp_path / "empty").mkdir()
    assert_import_refused(["hf-timesformer", str(tmp_path / "empty")], tmp_path / "out2", "config.json", capsys)
