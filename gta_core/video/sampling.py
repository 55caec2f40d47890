"""Which frames a clip takes: TSN segments or dense clips, as MMAction2's SampleFrames does.

Two rules cover the published checkpoints (docs/importing-pipelines.md):

- "tsn" (TSN / TSM, MMAction2's `SampleFrames(clip_len=1, num_clips=T)`): the
  video is cut into T equal segments and each gives one frame, the centre at
  test time, a random one in training. `twice_sample` adds a second view made
  of each segment's first frame.
- "dense" (I3D, SlowFast, MMAction2's `SampleFrames(clip_len=T,
  frame_interval=k, num_clips=M)`): T frames k apart, one stretch of
  (T-1)·k+1 frames; at test time M such clips spread from the first frame to
  the last start that fits (one clip: the middle one), indices past the end
  wrap round ('loop').
- "window" (MMAction2's DenseSampleFrames, the TSM repository's dense_sample):
  T frames frame_interval apart from a start inside the first n-63 frames;
  at test time num_clips starts spread by `linspace(..., dtype=int)`.

Both follow mmaction/datasets/transforms/loading.py (mmaction2 1.2.0) number
for number, floating-point order included, so indices equal its own
(tests/test_pipelines.py runs it). Each view is a list of T indices into the
decoded frames; MMAction2 concatenates them in this order.
"""
from __future__ import annotations

import numpy as np

SAMPLINGS = ("tsn", "dense", "window")
WINDOW = 64        # DenseSampleFrames' sample_range, the TSM repository's 64-frame window


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def tsn_views(
    num_available: int, segments: int, train: bool, rng=None, twice_sample: bool = False
) -> list[list[int]]:
    """TSN: one frame per segment; segment i is [i·n/T, (i+1)·n/T).

    Test: ⌊i·n/T + n/(2T)⌋ (the centre), plus ⌊i·n/T⌋ as a second view with
    `twice_sample`. Training: ⌊i·n/T + u_i·n/T⌋, u_i ~ U[0, 1). When n < T
    indices repeat (n=3, T=8 -> [0,0,0,1,1,2,2,2]).
    """
    _check_counts(num_available, segments)
    interval = num_available / float(segments)
    starts = np.arange(segments) * interval
    if train:
        offsets = [starts + _generator(rng).random(segments) * interval]
    else:
        offsets = [starts + interval / 2.0] + ([starts] if twice_sample else [])
    return [[int(i) for i in np.mod(view, num_available).astype(np.int32)] for view in offsets]


def dense_views(
    num_available: int,
    clip_len: int,
    frame_interval: int,
    num_clips: int,
    train: bool,
    rng=None,
    twice_sample: bool = False,
) -> list[list[int]]:
    """Dense clips: `num_clips` runs of `clip_len` frames `frame_interval` apart (MMAction2's 3-D rule)."""
    _check_counts(num_available, clip_len)
    if train:
        starts = _dense_train_starts(num_available, clip_len * frame_interval, num_clips, _generator(rng))
    else:
        starts = _dense_test_starts(num_available, (clip_len - 1) * frame_interval + 1, num_clips, twice_sample)
    indices = np.asarray(starts)[:, None] + np.arange(clip_len)[None, :] * frame_interval
    indices = np.mod(indices, num_available).astype(np.int32)  # out_of_bound_opt='loop'
    return [[int(i) for i in view] for view in indices]


def _dense_test_starts(n: int, span: int, num_clips: int, twice_sample: bool) -> np.ndarray:
    """SampleFrames._get_test_clips for clip_len > 1 (its round() is numpy's: halves to even)."""
    max_offset = max(n - span, 0)
    count = num_clips * 2 if twice_sample else num_clips
    if count == 1:
        return np.array([max_offset // 2])
    if num_clips == 1:
        raise ValueError("dense twice_sample needs num_clips >= 2 (MMAction2 divides by num_clips - 1)")
    return np.round(np.arange(count) * (max_offset / float(num_clips - 1)))


def _dense_train_starts(n: int, span: int, num_clips: int, rng: np.random.Generator) -> np.ndarray:
    """SampleFrames._get_train_clips (keep_tail_frames=False): a random start in each of num_clips stretches."""
    average = (n - span + 1) // num_clips
    if average > 0:
        return np.arange(num_clips) * average + rng.integers(average, size=num_clips)
    if n > max(num_clips, span):
        return np.sort(rng.integers(n - span + 1, size=num_clips))
    if average == 0:
        return np.around(np.arange(num_clips) * ((n - span + 1.0) / num_clips))
    return np.zeros(num_clips, dtype=np.int64)


def window_views(
    num_available: int, num_frames: int, frame_interval: int, num_clips: int, train: bool, rng=None
) -> list[list[int]]:
    """DenseSampleFrames (sample_range 64): T frames frame_interval apart, starts in [0, n-64] (loop past n)."""
    _check_counts(num_available, num_frames)
    positions = max(1, 1 + num_available - WINDOW)
    if train:
        starts = np.array([0 if positions == 1 else _generator(rng).integers(0, positions - 1)])
    else:
        starts = np.linspace(0, positions - 1, num=num_clips, dtype=int)
    indices = np.mod(starts[:, None] + np.arange(num_frames)[None, :] * frame_interval, num_available)
    return [[int(i) for i in view] for view in indices]


def _check_counts(num_available: int, num_frames: int) -> None:
    if num_available < 1:
        raise ValueError(f"num_available must be >= 1, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")


def sample_views(num_available: int, spec, train: bool = False, rng=None) -> list[list[int]]:
    """Every temporal view a ClipSpec asks for, each `spec.num_frames` indices long."""
    if spec.sampling == "tsn":
        return tsn_views(num_available, spec.num_frames, train, rng, spec.twice_sample)
    if spec.sampling == "window":
        return window_views(num_available, spec.num_frames, spec.frame_interval, spec.num_clips, train, rng)
    return dense_views(num_available, spec.num_frames, spec.frame_interval, spec.num_clips, train, rng,
                       spec.twice_sample)


def primary_view(num_views: int) -> int:
    """The temporal view the app shows: the middle clip (TSN's twice_sample: the centred one, view 0)."""
    return (num_views - 1) // 2 if num_views > 2 else 0
