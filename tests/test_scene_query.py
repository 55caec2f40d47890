"""One query for models that sample and crop a video differently: time steps, clip frames, scene points."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from gta_core.views import box_in_crop, crop_point, frame_for, scene_point, step_label, step_of


def record(spans, name="slow.res3.1"):
    return SimpleNamespace(frame_spans=tuple(spans), name=name)


@pytest.mark.parametrize("frame, step", [(0, 0), (2, 0), (3, 1), (7, 1), (8, 2), (15, 2), (-1, 0), (16, 2), (99, 2)])
def test_step_of_steps_of_unequal_span(frame, step):
    """Steps of 3, 5 and 8 frames: the first and last frame of each, and frames outside the clip (clamped)."""
    assert step_of(record([(0, 3), (3, 8), (8, 16)]), frame) == step


def test_step_of_uniform_slow_pathway_and_labels():
    slow = record([(4 * s, 4 * s + 4) for s in range(8)])          # SlowFast: 32 frames, α = 4
    assert [step_of(slow, f) for f in (0, 3, 4, 31)] == [0, 0, 1, 7]
    assert step_label(slow, 7) == "slow pathway, step 7 = frames 28–31"
    assert step_of(record([(t, t + 1) for t in range(8)], "res3.1"), 7) == 7   # R2D: a step is a frame


def test_frame_for_maps_one_moment_between_samplings():
    tsn = [7, 23, 38, 53, 68, 83, 98, 113]                  # 8 TSN centres of 121 frames
    dense = list(range(29, 93, 2))                           # 32 frames 2 apart from the middle
    assert frame_for(tsn[0], dense) == 0                     # before the dense clip: its first frame
    assert frame_for(tsn[-1], dense) == 31                   # after it: its last frame
    assert frame_for(53, dense) == 12                        # inside: the same video frame (29 + 2·12)
    assert frame_for(54, dense) == 12                        # between 53 and 55: the earlier one
    assert frame_for(dense[0], tsn) == 1 and frame_for(dense[-1], tsn) == 6
    assert frame_for(0, [0, 0, 1, 1, 2]) == 0 and frame_for(2, [0, 0, 1, 1, 2]) == 4    # repeats: the first


def test_scene_points_through_two_crops():
    centre_224 = (16 / 256, 115 / 455, 240 / 256, 339 / 455)  # a 16:9 frame at 455×256, centre crop 224
    three_left = (0.0, 0.0, 1.0, 256 / 455)                   # ThreeCrop 256, the left square
    sy, sx = scene_point(0.5, 0.5, centre_224)
    assert (sy, sx) == pytest.approx((0.5, 227 / 455))
    fy, fx, inside = crop_point(sy, sx, three_left)
    assert inside and (fy, fx) == pytest.approx((0.5, 227 / 256))
    # The top-left corner of the 224 crop is inside the left crop; the left crop's corner is outside the 224 one.
    assert crop_point(*scene_point(0.0, 0.0, centre_224), three_left)[:2] == pytest.approx((16 / 256, 115 / 256))
    fy, fx, inside = crop_point(0.0, 0.0, centre_224)
    assert not inside and (fy, fx) == (0.0, 0.0)                              # read at the nearest edge
    fy, fx, inside = crop_point(1.0, 1.0, centre_224)
    assert not inside and fy < 1.0 and fx < 1.0
    # Round trip, and the box of one crop in the other's fractions.
    assert crop_point(*scene_point(0.3, 0.7, centre_224), centre_224) == pytest.approx((0.3, 0.7, True))
    assert box_in_crop(three_left, centre_224) == pytest.approx((-16 / 224, -115 / 224, 240 / 224, 141 / 224))
