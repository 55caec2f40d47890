"""torchvision 0.28.0's own MViTv2 (tests/peers/torchvision.py) as the oracle of `import torchvision` for mvit_v2_s.

Random weights (and random LayerNorm affine, relative-position tables and CLS
token), `torch.save(model.state_dict())` as torchvision publishes its weights,
our CLI imports the file. mvit_v2_s itself runs only at 16×224² in torchvision
(its token grid is fixed when it is built), so its one test is at that size;
the rest use torchvision's `MViT` class with mvit_v2_s's switches and five
smaller blocks (the same code, 8×96², under a second a forward). Logits agree
to 1e-4 of the largest; the captured attention rows equal torchvision's
softmax, recomputed from its own modules and `_add_rel_pos`, to 1e-5.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from gta_core import capture, interpret, load_checkpoint, views
from gta_core.__main__ import main as cli_main
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.evaluate import dataset_for
from gta_core.importers import import_checkpoint, mvit as mvit_importer
from gta_core.models.mvit import V2_S_BLOCKS
from gta_core.query_dependence import block_scores
from gta_core.video.clip import ClipSpec
from tests.helpers import assert_import_refused, assert_same_logits, logit_gap, one_thread  # noqa: F401
from tests.peers import torchvision as peer
from tests.test_evaluate import make_checkpoint, run_cli
from tests.test_timesformer_compare import export_html
from tests.test_train import data_root  # noqa: F401  (fixture: the tiny temporal set)

pytestmark = pytest.mark.usefixtures("one_thread")

# (heads, in, out, query stride, key stride): widths double where the queries are pooled, key strides 8 / 4 / 2
# as in mvit_v2_s (what the importer reads back). 8×96²: 4 steps on a 24² grid, then 12², then 6².
SMALL_BLOCKS = ((1, 16, 16, 1, 8), (2, 16, 32, 2, 4), (2, 32, 32, 1, 4), (4, 32, 64, 2, 2), (4, 64, 64, 1, 2))
SMALL_SIZE = (8, 96)
TOLERANCE = 1e-5


def their_attention(model, clip: torch.Tensor) -> dict[str, torch.Tensor]:
    """blocks.i -> (B, heads, 1 + L, 1 + S): torchvision's softmax weights, recomputed from each attention's inputs
    with its own qkv, pools and `_add_rel_pos` (its forward takes the softmax of a tensor: nothing to hook)."""
    mvit, inputs, handles = peer.video_models("mvit"), {}, []
    for index, block in enumerate(model.blocks):
        handles.append(block.attn.register_forward_pre_hook(
            lambda module, args, name=f"blocks.{index}": inputs.update({name: (module, *args)})))
    try:
        with torch.no_grad():
            model(clip)
            weights = {}
            for name, (attn, x, thw) in inputs.items():
                batch, tokens, _ = x.shape
                q, k, _ = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).transpose(1, 3).unbind(2)
                k, k_thw = attn.pool_k(k, thw)
                q, q_thw = attn.pool_q(q, thw)
                logits = mvit._add_rel_pos(attn.scaler * q @ k.transpose(2, 3), q, q_thw, k_thw,
                                           attn.rel_pos_h, attn.rel_pos_w, attn.rel_pos_t)
                weights[name] = logits.softmax(dim=-1)
    finally:
        for handle in handles:
            handle.remove()
    return weights


def imported(folder, model, *flags: str):
    source = folder / "mvit.pth"
    torch.save(model.state_dict(), source)
    assert cli_main(["import", "torchvision", str(source), "--out", str(folder / "ours"), *flags]) == 0
    return load_checkpoint(folder / "ours")


@pytest.fixture(scope="module")
def small(one_thread, tmp_path_factory):   # noqa: F811  (one thread while it builds and imports)
    """(torchvision's model, our import, a clip, torchvision's attention weights on it)."""
    model = peer.build_mvit(SMALL_BLOCKS, SMALL_SIZE, num_classes=7)
    checkpoint = imported(tmp_path_factory.mktemp("mvit_small"), model, "--frames", "8")
    clip = torch.randn(2, 3, 8, 96, 96, generator=torch.Generator().manual_seed(3))
    return model, checkpoint, clip, their_attention(model, clip)


def test_small_mvit_logits_and_what_the_importer_read(small):
    model, checkpoint, clip, _ = small
    arch = checkpoint.config.model_config()
    assert (arch.backbone, arch.num_frames, arch.num_classes) == ("mvit", 8, 7)
    assert (arch.mvit_blocks, arch.mvit_trained_size) == (SMALL_BLOCKS, SMALL_SIZE)
    with torch.no_grad():
        theirs = model(clip)
        assert_same_logits(checkpoint.model(clip), theirs)
    assert "mvit_strides" in checkpoint.config.provenance["assumed"]      # not mvit_v2_s's table: strides inferred
    assert checkpoint.config.model_name == "torchvision mvit (5 blocks)"
    assert interpret.order_sensitivity(arch)[0]


def test_mvit_without_relative_positions_is_refused(small, tmp_path, capsys):
    """mvit_v1_b's layout (absolute positions, no rel_pos tables) is not MViTv2: one error line, nothing written."""
    state = {k: v for k, v in small[0].state_dict().items() if "rel_pos" not in k}
    torch.save(state, tmp_path / "mvit_v1.pth")
    assert_import_refused(["torchvision", str(tmp_path / "mvit_v1.pth")], tmp_path / "ours",
                          "only MViTv2 (mvit_v2_s) is supported", capsys)


@pytest.mark.parametrize("dense", [False, True])
def test_captured_rows_are_torchvisions_softmax(small, dense):
    _, checkpoint, clip, theirs = small
    records = capture(checkpoint.model, clip, dense=dense).records
    assert list(records) == [f"blocks.{i}" for i in range(len(SMALL_BLOCKS))]
    for name, record in records.items():
        weights = theirs[name]                                        # (B, heads, 1 + L, 1 + S)
        assert (record.rows.dense is not None) == dense and (record.rows.query is None) == dense
        assert (record.rows.weights - weights.flatten(0, 1)).abs().max() <= TOLERANCE, name
        # A view's row: query (t, y, x), mean over heads, patch keys as (T', h, w); the CLS key's share apart.
        steps, (height, width), (key_h, key_w) = record.num_steps, record.grid, record.key_grid
        t, y, x = steps - 1, height // 2, width - 1
        index = 1 + (t * height + y) * width + x
        expected = weights[1, :, index, 1:].mean(0).reshape(steps, key_h, key_w)
        assert (record.row(t, y, x, batch=1) - expected).abs().max() <= TOLERANCE, name
        assert float(record.cls_key_weight[1]) == pytest.approx(float(weights[1, :, 1:, 0].mean()), abs=TOLERANCE)
        # Temporal attention: the patch-key weight per key step, averaged over query cells and heads.
        per_step = weights[:, :, 1:, 1:].reshape(2, -1, steps, height * width, steps, key_h * key_w).sum(-1)
        assert (record.pixel_mean - per_step.mean(dim=(1, 3))).abs().max() <= TOLERANCE, name


def test_lazy_rows_equal_dense_rows_and_need_the_position_bias(small):
    _, checkpoint, clip, _ = small
    lazy = capture(checkpoint.model, clip[:1], dense=False).records["blocks.1"]
    dense = capture(checkpoint.model, clip[:1], dense=True).records["blocks.1"]
    assert lazy.rows.dense is None and dense.rows.query is None
    queries = torch.tensor([0, 1, 77, lazy.rows.query.shape[1] - 1])          # the CLS query and patch queries
    for n in (0, 1):
        assert (lazy.rows.row(n, queries) - dense.rows.row(n, queries)).abs().max() <= TOLERANCE
        for key in (0, 5):
            assert (lazy.rows.column(n, key) - dense.rows.column(n, key)).abs().max() <= TOLERANCE
    # The bias is part of every patch row: without the three tables' terms the rows move by far more.
    unbiased = dataclasses.replace(lazy.rows, **{part: torch.zeros_like(getattr(lazy.rows, part))
                                                for part in ("rel_t", "rel_h", "rel_w")})
    assert (unbiased.row(0, queries[1:]) - dense.rows.row(0, queries[1:])).abs().max() > 1e-2
    assert (unbiased.row(0, 0) - dense.rows.row(0, 0)).abs().max() <= TOLERANCE     # the CLS row has none


def test_zeroing_the_time_table_moves_the_logits(small):
    model, checkpoint, clip, _ = small
    ours = checkpoint.model
    with torch.no_grad():
        theirs = model(clip)
        saved = [block.attn.rel_pos_t.clone() for block in ours.backbone.blocks]
        try:
            for block in ours.backbone.blocks:
                block.attn.rel_pos_t.zero_()
            assert logit_gap(ours(clip), theirs) > 1e-2
        finally:
            for block, table in zip(ours.backbone.blocks, saved):
                block.attn.rel_pos_t.copy_(table)
        assert_same_logits(ours(clip), theirs)


def test_views_and_query_dependence_read_the_record(small):
    _, checkpoint, clip, theirs = small
    record = capture(checkpoint.model, clip[:1]).records["blocks.2"]
    view = views.query_view(record, t=5, fy=0.5, fx=0.25)           # frame 5 -> step 2 (2 frames a step)
    assert (view.step, view.cell, view.grid, view.key_grid) == (2, (6, 3), (12, 12), (3, 3))
    assert view.spacetime.shape == (4, 3, 3) and view.kind == "MVIT"
    matrices = views.temporal_matrices(record)
    assert list(matrices) == ["MViT mean over query cells and heads (patch keys)"]
    cls_share = float(record.cls_key_weight[0])
    assert matrices[next(iter(matrices))].sum(axis=1) == pytest.approx([1 - cls_share] * 4, abs=0.02)
    assert "the CLS key takes the rest" in record.note() and "Mean over 2 heads" in record.note()
    score = block_scores(record)["MViT"]
    assert score.queries == 4 * 12 * 12 and 0 < score.js < 1 and 0 <= score.explained <= 1


def test_class_names_and_pipeline_are_mvit_v2_s_weights_enum():
    weights = peer.video_models("mvit").MViT_V2_S_Weights.KINETICS400_V1
    transform = weights.transforms()
    assert mvit_importer.PREPROCESSING == {"mean": transform.mean, "std": transform.std}
    assert list(transform.crop_size) == [mvit_importer.SIZES["input_size"]] * 2
    assert list(transform.resize_size) == [mvit_importer.SIZES["resize_shorter"]]      # the shorter side, aspect kept
    assert "clip_len=16" in weights.meta["_docs"]
    assert (weights.meta["min_temporal_size"], *weights.meta["min_size"]) == (16, 224, 224)


def test_mvit_v2_s_logits_and_attention(tmp_path):
    """The full model at its one size, 16×224² (about 2 s a forward on one thread)."""
    model = peer.build_mvit()
    checkpoint = imported(tmp_path, model)
    arch, config = checkpoint.config.model_config(), checkpoint.config
    assert (arch.backbone, arch.num_frames, arch.num_classes, arch.mvit_blocks) == ("mvit", 16, 400, None)
    assert [len(block.attn.rel_pos_t) for block in checkpoint.model.backbone.blocks] == [15] * len(V2_S_BLOCKS)
    assert config.model_name == "torchvision mvit_v2_s" and "mvit_strides" not in config.provenance["assumed"]
    assert config.class_names == list(peer.video_models("mvit").MViT_V2_S_Weights.KINETICS400_V1.meta["categories"])
    assert (config.input_size, config.resize_shorter, config.resize_to, config.mean) == (224, 256, None, [0.45] * 3)
    clip = torch.randn(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(3))
    theirs = their_attention(model, clip)
    with torch.no_grad():
        logits = model(clip)
    result = capture(checkpoint.model, clip)
    assert_same_logits(result.logits, logits)
    record = result.records["blocks.1"]               # queries pooled 56² -> 28², keys 56² -> 14²: 6272 × 1569
    assert (record.grid, record.key_grid, record.num_steps) == ((28, 28), (14, 14), 8)
    queries = torch.arange(1, 6273, 97)
    for n in range(2):
        assert (record.rows.row(n, queries) - theirs["blocks.1"][0, n, queries]).abs().max() <= TOLERANCE
    last = result.records["blocks.15"]                # 8 heads, 8×7×7 queries over 8×7×7 keys, after 15 layers
    assert (last.rows.weights - theirs["blocks.15"].flatten(0, 1)).abs().max() <= TOLERANCE


def mvit_beside_a_gta(data_root, folder):
    """(a demo GTA, the small MViT imported with the tiny temporal set's class names at 4 frames of 32²)."""
    names = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32)).class_names
    gta = make_checkpoint(folder / "gta", data_root, "demo_r2d18_gta")
    labels = folder / "labels.txt"
    labels.write_text("\n".join(names), encoding="utf-8")
    torch.save(peer.build_mvit(SMALL_BLOCKS, SMALL_SIZE, num_classes=len(names)).state_dict(), folder / "mvit.pth")
    mvit = import_checkpoint("torchvision", folder / "mvit.pth", folder / "mvit", frames=4, labels=labels,
                             overrides={"input_size": 32, "resize_shorter": 32})
    return names, gta, mvit


def test_compare_an_mvit_beside_a_gta(data_root, tmp_path):  # noqa: F811
    names, gta, mvit = mvit_beside_a_gta(data_root, tmp_path)
    run = run_cli("compare", str(gta), str(mvit), "--data", str(data_root), "--batch-size", "4", "--no-cache", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    stats = json.loads(run.stdout)["temporal_stats"]["mvit"]
    assert set(stats) == {f"blocks.{i}" for i in range(5)} and stats["blocks.4"]["kind"] == "MVIT"
    # The class mean of the record's T'×T' matrix, by hand: each clip of one class captured, then averaged.
    checkpoint = load_checkpoint(mvit)
    dataset = dataset_for(checkpoint, data_root, "validation", "auto")
    labels = np.array([dataset[i][1] for i in range(len(dataset))])
    label = int(labels[0])
    rows = [capture(checkpoint.model, dataset[i][0][None]).records["blocks.4"].pixel_mean[0].numpy()
            for i in np.flatnonzero(labels == label)]
    np.testing.assert_allclose(np.asarray(stats["blocks.4"]["per_class"][names[label]]), np.mean(rows, axis=0), atol=1e-5)


def test_export_and_grad_cam_of_an_mvit(data_root, tmp_path):  # noqa: F811
    _, gta, mvit = mvit_beside_a_gta(data_root, tmp_path)
    html = export_html(mvit, gta, tmp_path)
    assert "blocks.4: space-time row of step 1 = frames 2–3" in html        # Query point, as NL's row
    assert "blocks.4: MViT mean over query cells and heads (patch keys)" in html and "res3.1: spatial, frame 2" in html
    # Grad-CAM on the tokens entering the last block (one step of 2 frames, spread over both).
    model = load_checkpoint(mvit).model
    cam = interpret.grad_cam(model, torch.randn(3, 4, 32, 32, generator=torch.Generator().manual_seed(1)), target=1)
    assert cam.maps.shape == (4, 2, 2) and (cam.maps[0] == cam.maps[1]).all() and not (cam.maps[0] == cam.maps[2]).all()
