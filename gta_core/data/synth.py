"""A synthetic video dataset in the Something-Something v2 layout.

    python -m gta_core synth OUT --seed 0 [--variant temporal|appearance]
        [--videos-per-class 67] [--size 128x170] [--frames 16] [--fps 8] [--workers 2]
        [--validation-fraction 0.2]

writes

    OUT/videos/{id}.webm        VP9 in WebM, as SSv2 ships (libvpx-vp9, realtime)
    OUT/labels.json             {"Moving something up": "0", ...}   (SSv2's labels file)
    OUT/train.json, OUT/validation.json
                                [{"id", "label", "template", "placeholders"}]
    OUT/reverse_pairs.json      temporal variant: class -> class of its time reversal
    OUT/dataset_info.json       seed, variant, generator version, command line, sizes

Two variants:

- temporal: the class is decided by temporal order. Classes come in pairs that
  are each other's time reversal (left->right / right->left, up / down, closer /
  away, clockwise / counter-clockwise, covering / uncovering, appearing /
  disappearing). A video of the second class of a pair is *rendered as the
  reverse* of a sample of the first, so both have the same distribution of
  single frames: no frame reveals the class within a pair. Three "pretending"
  classes move and come back (palindromes): their frames look like the frames
  of the one-way classes, and their time reversal is themselves, which
  reverse_pairs.json records (class -> itself), so "reversed accuracy" expects
  the same label for them.
- appearance: the class is the kind of object shown (circle, star, ...); the
  motion is drawn from all the temporal classes at random, so order is irrelevant
  (a stand-in for Kinetics, where one frame mostly suffices).

Variation: object shape, colour, texture (solid, stripes, checks, dots, gradient,
in object coordinates so rotation is visible), size, position, path length,
speed and timing (the motion starts and ends at random times), a static
distractor object half of the time, and backgrounds that are random crops of
freely licensed natural images shipped inside matplotlib (Grace Hopper's
portrait, a US Navy photograph in the public domain; the USGS Jacksboro fault
elevation model, public domain, colour-mapped) or procedural gradients, noise and
stripes.

Every video draws from its own seed, numpy's default_rng([seed, variant, class,
k]), and libvpx encodes with one thread, so the output does not depend on the
worker count.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

GENERATOR_VERSION = "1.0"
VARIANTS = ("temporal", "appearance")
# "high": natural-image or noise backgrounds and a distractor half the time (the
# full task). "low": smooth backgrounds at reduced contrast, no distractor and
# larger objects, so that the tiny CPU demo models learn it in minutes; the
# classes and their temporal structure are the same (in the appearance variant
# each object kind also gets its own colour family).
CLUTTER_LEVELS = ("high", "low")
VALIDATION_FRACTION = 0.2
OBJECT_KINDS = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "heart")
COLOUR_NAMES = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")


# ---------------------------------------------------------------------------
# Per-frame state of the scene and the motions that produce it

@dataclass(frozen=True)
class State:
    x: float          # object centre, fraction of the width
    y: float          # object centre, fraction of the height
    scale: float      # object side, fraction of the shorter side
    angle: float      # degrees, clockwise on screen
    alpha: float      # opacity of the object in [0, 1]
    cover: float      # how far the occluder has come in, 0 (out) .. 1 (covering)


def _progress(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """0 -> 1 over a random sub-interval of [0, 1], smoothstep eased: speed varies."""
    t0, t1 = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
    u = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _there_and_back(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0, symmetric about t = 0.5, so the sequence is a palindrome."""
    margin = rng.uniform(0.0, 0.2)
    u = np.clip((t - margin) / (1 - 2 * margin), 0.0, 1.0)
    return np.sin(np.pi * u) ** 2


def _base(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """A still scene: random place, size and angle, repeated over n frames."""
    return {
        "x": np.full(n, rng.uniform(0.3, 0.7)),
        "y": np.full(n, rng.uniform(0.35, 0.65)),
        "scale": np.full(n, rng.uniform(0.25, 0.4)),
        "angle": np.full(n, rng.uniform(0, 360)),
        "alpha": np.ones(n),
        "cover": np.zeros(n),
    }


def _move_lr(rng, t, p):
    s = _base(rng, len(t))
    x0, x1 = rng.uniform(0.12, 0.35), rng.uniform(0.65, 0.88)
    s["x"] = x0 + (x1 - x0) * p(rng, t)
    s["y"] = s["y"] + rng.uniform(-0.08, 0.08) * np.sin(np.pi * t)   # a slight arc
    return s


def _move_up(rng, t, p):
    s = _base(rng, len(t))
    y0, y1 = rng.uniform(0.7, 0.85), rng.uniform(0.15, 0.3)
    s["y"] = y0 + (y1 - y0) * p(rng, t)
    s["x"] = s["x"] + rng.uniform(-0.06, 0.06) * np.sin(np.pi * t)
    s["scale"] = s["scale"] * 0.8
    return s


def _closer(rng, t, p):
    s = _base(rng, len(t))
    s0 = rng.uniform(0.12, 0.2)
    s["scale"] = s0 * (1 + rng.uniform(1.5, 2.5) * p(rng, t))
    return s


def _turn_cw(rng, t, p):
    s = _base(rng, len(t))
    s["angle"] = s["angle"] + rng.uniform(120, 300) * p(rng, t)
    return s


def _cover(rng, t, p):
    s = _base(rng, len(t))
    s["cover"] = p(rng, t)
    return s


def _appear(rng, t, p):
    s = _base(rng, len(t))
    q = p(rng, t)
    s["alpha"] = q
    s["scale"] = s["scale"] * (0.6 + 0.4 * q)
    return s


def _pretend_cover(rng, t, p):
    s = _cover(rng, t, p)
    s["cover"] = s["cover"] * rng.uniform(0.4, 0.7)  # comes half-way, then leaves
    return s


# name, template, motion, progress, reversed: the class is the time reversal of `motion`
Motion = Callable[[np.random.Generator, np.ndarray, Callable], dict]
TEMPORAL_CLASSES: tuple[tuple[str, Motion, Callable, bool], ...] = (
    ("Moving [something] from left to right", _move_lr, _progress, False),
    ("Moving [something] from right to left", _move_lr, _progress, True),
    ("Moving [something] up", _move_up, _progress, False),
    ("Moving [something] down", _move_up, _progress, True),
    ("Moving [something] closer to the camera", _closer, _progress, False),
    ("Moving [something] away from the camera", _closer, _progress, True),
    ("Turning [something] clockwise", _turn_cw, _progress, False),
    ("Turning [something] counterclockwise", _turn_cw, _progress, True),
    ("Covering [something] with [something]", _cover, _progress, False),
    ("Uncovering [something]", _cover, _progress, True),
    ("Making [something] appear", _appear, _progress, False),
    ("Making [something] disappear", _appear, _progress, True),
    ("Pretending to move [something] sideways", _move_lr, _there_and_back, False),
    ("Pretending to turn [something]", _turn_cw, _there_and_back, False),
    ("Pretending to cover [something] with [something]", _pretend_cover, _there_and_back, False),
)


def class_name(template: str) -> str:
    """SSv2's rule: the class is the template with the brackets removed."""
    return template.replace("[", "").replace("]", "")


def reverse_pairs() -> dict[str, str]:
    """Class -> class of its time reversal (palindromic classes map to themselves)."""
    out: dict[str, str] = {}
    for template, motion, prog, _ in TEMPORAL_CLASSES:
        twins = [t for t, m, p, _ in TEMPORAL_CLASSES if m is motion and p is prog]
        if prog is _there_and_back:
            out[class_name(template)] = class_name(template)
        elif len(twins) == 2:
            other = twins[1] if twins[0] == template else twins[0]
            out[class_name(template)] = class_name(other)
    return out


def appearance_templates() -> list[str]:
    return [f"Showing a {kind}" for kind in OBJECT_KINDS]


# ---------------------------------------------------------------------------
# Appearance: shapes, textures, backgrounds

def _shape_mask(kind: str, n: int) -> np.ndarray:
    """An n×n float mask of a shape centred in the patch, anti-aliased."""
    mask = np.zeros((n, n), np.uint8)
    c, r = n / 2, n * 0.45
    sh = 4  # fixed-point bits for sub-pixel polygon coordinates
    def poly(points):
        pts = np.round(np.asarray(points) * (1 << sh)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=sh)
    def regular(k, rad, phase=-np.pi / 2):
        a = phase + 2 * np.pi * np.arange(k) / k
        return np.stack([c + rad * np.cos(a), c + rad * np.sin(a)], 1)
    if kind == "circle":
        cv2.circle(mask, (int(c), int(c)), int(r), 255, -1, cv2.LINE_AA)
    elif kind == "ring":
        cv2.circle(mask, (int(c), int(c)), int(r), 255, -1, cv2.LINE_AA)
        cv2.circle(mask, (int(c), int(c)), int(r * 0.55), 0, -1, cv2.LINE_AA)
    elif kind == "square":
        poly(regular(4, r * 1.2, np.pi / 4))
    elif kind == "triangle":
        poly(regular(3, r * 1.1))
    elif kind == "hexagon":
        poly(regular(6, r))
    elif kind == "star":
        outer, inner = regular(5, r * 1.05), regular(5, r * 0.45, -np.pi / 2 + np.pi / 5)
        poly(np.stack([outer, inner], 1).reshape(-1, 2))
    elif kind == "cross":
        w = r * 0.35
        poly([(c - w, c - r), (c + w, c - r), (c + w, c - w), (c + r, c - w), (c + r, c + w),
              (c + w, c + w), (c + w, c + r), (c - w, c + r), (c - w, c + w), (c - r, c + w),
              (c - r, c - w), (c - w, c - w)])
    elif kind == "heart":
        a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        hx, hy = 16 * np.sin(a) ** 3, -(13 * np.cos(a) - 5 * np.cos(2 * a) - 2 * np.cos(3 * a) - np.cos(4 * a))
        poly(np.stack([c + hx * r / 17, c + hy * r / 17 - r * 0.05], 1))
    else:
        raise ValueError(kind)
    return mask.astype(np.float32) / 255.0


def _hsv_colour(rng: np.random.Generator, hue_index: int | None = None) -> tuple[np.ndarray, str]:
    idx = int(rng.integers(len(COLOUR_NAMES))) if hue_index is None else hue_index
    hue = (idx + rng.uniform(-0.3, 0.3)) / len(COLOUR_NAMES) * 180
    hsv = np.uint8([[[hue % 180, rng.uniform(150, 255), rng.uniform(150, 255)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32), COLOUR_NAMES[idx]


def _texture(rng: np.random.Generator, n: int, base: np.ndarray, plain_ok: bool = True) -> np.ndarray:
    """An n×n×3 float texture around a base colour: solid, stripes, checks, dots, gradient."""
    other = np.clip(base * rng.uniform(0.3, 0.7) + rng.uniform(0, 80), 0, 255)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    kind = rng.integers(0 if plain_ok else 1, 5)
    if kind == 0:
        w = np.zeros((n, n), np.float32)
    elif kind == 1:
        a, f = rng.uniform(0, np.pi), rng.uniform(2, 5)
        w = (np.sin(2 * np.pi * f * (xx * np.cos(a) + yy * np.sin(a))) > 0).astype(np.float32)
    elif kind == 2:
        f = rng.integers(2, 5)
        w = ((np.floor(xx * f * 2) + np.floor(yy * f * 2)) % 2).astype(np.float32)
    elif kind == 3:
        f = rng.uniform(3, 6)
        w = ((np.sin(2 * np.pi * f * xx) * np.sin(2 * np.pi * f * yy)) > 0.4).astype(np.float32)
    else:
        w = xx  # a gradient along the object's own x axis
    return base[None, None] * (1 - w[..., None]) + other[None, None] * w[..., None]


@lru_cache(maxsize=1)
def _natural_images() -> tuple[np.ndarray, ...]:
    """Freely licensed images shipped in matplotlib's sample data (see module docstring)."""
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "sample_data"
    hopper = cv2.cvtColor(cv2.imread(str(root / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    dem = np.load(root / "jacksboro_fault_dem.npz")["elevation"].astype(np.float32)
    dem = ((dem - dem.min()) / (np.ptp(dem) + 1e-6) * 255).astype(np.uint8)
    terrain = cv2.cvtColor(cv2.applyColorMap(dem, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return hopper, terrain


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind < 2:  # a random crop of a natural image, flipped and colour-jittered
        img = _natural_images()[kind]
        ih, iw = img.shape[:2]
        side = rng.uniform(0.35, 0.8)
        ch, cw = int(ih * side), int(min(iw, ih * side * w / h))
        y0, x0 = rng.integers(0, ih - ch + 1), rng.integers(0, iw - cw + 1)
        crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out = crop.astype(np.float32) * rng.uniform(0.6, 1.1, size=3) + rng.uniform(-20, 20)
    elif kind == 2:  # smooth noise
        small = rng.uniform(0, 255, size=(4, 5, 3)).astype(np.float32)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    else:  # a two-colour gradient with soft stripes
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, np.pi)
        g = 0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) / rng.uniform(6, 30))
        out = c0 * g[..., None] + c1 * (1 - g[..., None])
    return np.clip(out, 0, 255).astype(np.float32)


@dataclass
class _Sprite:
    rgb: np.ndarray    # n×n×3 float
    mask: np.ndarray   # n×n float

    def paste(self, frame: np.ndarray, x: float, y: float, side: float, angle: float, alpha: float) -> None:
        """Composite onto frame (H×W×3 float) centred at (x, y) pixels, `side` pixels wide."""
        if alpha <= 0:
            return
        h, w = frame.shape[:2]
        n = self.mask.shape[0]
        m = cv2.getRotationMatrix2D((n / 2, n / 2), -angle, side / n)  # negative: clockwise on screen
        m[:, 2] += (x - n / 2, y - n / 2)
        rgb = cv2.warpAffine(self.rgb, m, (w, h), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(self.mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None] * alpha
        frame *= 1 - a
        frame += rgb * a


def _sprite(
    rng: np.random.Generator, kind: str, n: int = 64, plain_ok: bool = True, hue_index: int | None = None
) -> tuple[_Sprite, str]:
    colour, colour_name = _hsv_colour(rng, hue_index)
    return _Sprite(_texture(rng, n, colour, plain_ok), _shape_mask(kind, n)), colour_name


# ---------------------------------------------------------------------------
# Rendering one video

@dataclass(frozen=True)
class VideoPlan:
    variant: str
    class_index: int
    seed_words: tuple[int, ...]   # the video's own seed
    height: int
    width: int
    frames: int
    clutter: str = "high"


def render(plan: VideoPlan) -> tuple[np.ndarray, list[str]]:
    """Return (frames (T, H, W, 3) uint8, placeholders)."""
    rng = np.random.default_rng(list(plan.seed_words))
    h, w, n = plan.height, plan.width, plan.frames
    t = np.linspace(0.0, 1.0, n)
    if plan.variant == "temporal":
        template, motion, prog, backwards = TEMPORAL_CLASSES[plan.class_index]
        kind = OBJECT_KINDS[rng.integers(len(OBJECT_KINDS))]
    else:
        template = appearance_templates()[plan.class_index]
        kind = OBJECT_KINDS[plan.class_index]
        _, motion, prog, backwards = TEMPORAL_CLASSES[rng.integers(len(TEMPORAL_CLASSES))]
        if motion in (_cover, _appear, _pretend_cover):  # keep the object in view
            motion, prog = _move_lr, _progress
    track = motion(rng, t, prog)
    background = _background(rng, h, w)
    low_clutter = plan.clutter == "low"
    if low_clutter:  # a blurred, flattened background; the object 1.4x larger
        background = cv2.GaussianBlur(background, (0, 0), sigmaX=max(h, w) / 16)
        background = background.mean() + 0.35 * (background - background.mean())
        track["scale"] = track["scale"] * 1.4
    # a turning plain circle (or square, star) can look the same both ways: turning objects are textured
    # Low clutter, appearance: each object kind also has its own colour family (as a Kinetics
    # scene has its typical look), which the tiny demo models need to learn the set on a CPU.
    hue_index = plan.class_index if (low_clutter and plan.variant == "appearance") else None
    sprite, colour_name = _sprite(rng, kind, plain_ok=motion is not _turn_cw, hue_index=hue_index)
    placeholders = [f"{colour_name} {kind}"]
    distractor = None
    if rng.random() < 0.5 and not low_clutter:
        d_kind = OBJECT_KINDS[rng.integers(len(OBJECT_KINDS))] if plan.variant == "temporal" else "square"
        d_sprite, _ = _sprite(rng, d_kind)
        distractor = (d_sprite, rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h,
                      rng.uniform(0.12, 0.2) * min(h, w), rng.uniform(0, 360))
        if plan.variant == "appearance":  # a plain grey square: never looks like a class
            d_sprite.rgb[:] = rng.uniform(60, 200)
    occluder = None
    if "[something] with [something]" in template or motion in (_cover, _pretend_cover):
        o_colour, o_name = _hsv_colour(rng)
        occluder = (_texture(rng, 64, o_colour), int(rng.integers(4)))  # texture, side it comes from
        placeholders.append(f"{o_name} cloth")
    flicker = rng.uniform(-6, 6, size=n) * (rng.random() < 0.5)

    short = min(h, w)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        frame = background.copy()
        if distractor is not None:
            d_sprite, dx, dy, dside, dangle = distractor
            d_sprite.paste(frame, dx, dy, dside, dangle, 1.0)
        cx, cy, side = track["x"][i] * w, track["y"][i] * h, track["scale"][i] * short
        sprite.paste(frame, cx, cy, side, track["angle"][i], track["alpha"][i])
        if occluder is not None and track["cover"][i] > 0:
            _paint_occluder(frame, occluder, cx, cy, side, track["cover"][i])
        out[i] = np.clip(frame + flicker[i], 0, 255).astype(np.uint8)
    if backwards:
        out = out[::-1].copy()
    return out, placeholders


def _paint_occluder(frame, occluder, cx, cy, side, amount) -> None:
    """A cloth that slides in from one side and, at amount = 1, covers the object."""
    texture, from_side = occluder
    h, w = frame.shape[:2]
    span = 1.5 * side
    end_x, end_y = cx - span / 2, cy - span / 2            # top-left corner when covering
    start_x, start_y = {0: (-span, end_y), 1: (w, end_y), 2: (end_x, -span), 3: (end_x, h)}[from_side]
    x0 = start_x + (end_x - start_x) * amount
    y0 = start_y + (end_y - start_y) * amount
    xa, xb = max(0, int(round(x0))), min(w, int(round(x0 + span)))
    ya, yb = max(0, int(round(y0))), min(h, int(round(y0 + span)))
    if xa < xb and ya < yb:
        frame[ya:yb, xa:xb] = cv2.resize(texture, (xb - xa, yb - ya), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------
# Encoding and the dataset layout

def encode_webm(frames: np.ndarray, path: str | os.PathLike, fps: int) -> None:
    """VP9 in WebM (SSv2's format), libvpx realtime, one thread (deterministic)."""
    import av

    # bitexact: no random SegmentUID or muxer version string, so equal frames give equal bytes
    with av.open(str(path), "w", format="webm", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0", "g": "64"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _templates(variant: str) -> list[str]:
    if variant == "temporal":
        return [template for template, *_ in TEMPORAL_CLASSES]
    if variant == "appearance":
        return appearance_templates()
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _job(args: tuple[VideoPlan, str, int]) -> tuple[str, list[str]]:
    plan, path, fps = args
    frames, placeholders = render(plan)
    encode_webm(frames, path, fps)
    return path, placeholders


def _fill(template: str, placeholders: list[str]) -> str:
    out = template
    for p in placeholders:
        out = out.replace("[something]", p, 1)
    return out.replace("[something]", "something")


def parse_size(text: str | int | tuple[int, int]) -> tuple[int, int]:
    """'128' (shorter side, 4:3 landscape) or '128x170' (height x width) -> (H, W)."""
    if isinstance(text, tuple):
        return text
    text = str(text).lower()
    if "x" in text:
        h, w = (int(v) for v in text.split("x"))
    else:
        h = int(text)
        w = 2 * round(h * 4 / 3 / 2)
    if h < 16 or w < 16 or h % 2 or w % 2:
        raise ValueError(f"size must be even and >= 16, got {h}x{w}")
    return h, w


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    variant: str = "temporal",
    videos_per_class: int = 67,
    size: str | int | tuple[int, int] = "128x170",
    frames: int = 16,
    fps: int = 8,
    workers: int | None = None,
    clutter: str = "high",
    validation_fraction: float = VALIDATION_FRACTION,
    command_line: str | None = None,
) -> Path:
    """Write a dataset (see the module docstring) and return its folder."""
    templates = _templates(variant)
    height, width = parse_size(size)
    if clutter not in CLUTTER_LEVELS:
        raise ValueError(f"clutter must be one of {CLUTTER_LEVELS}, got {clutter!r}")
    if frames < 2 or videos_per_class < 1:
        raise ValueError("need frames >= 2 and videos_per_class >= 1")
    if not 0.0 < validation_fraction <= 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1], got {validation_fraction}")
    out = Path(out_dir)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)

    variant_code = VARIANTS.index(variant)
    total = len(templates) * videos_per_class
    # Video ids are a seeded permutation, so an id says nothing about its class.
    ids = np.random.default_rng([seed, variant_code, 2**31]).permutation(total) + 1
    n_val = max(1, round(videos_per_class * validation_fraction)) if videos_per_class > 1 else 0
    jobs, meta = [], []
    for c, template in enumerate(templates):
        for k in range(videos_per_class):
            vid = str(int(ids[c * videos_per_class + k]))
            plan = VideoPlan(variant, c, (seed, variant_code, c, k), height, width, frames, clutter)
            jobs.append((plan, str(videos / f"{vid}.webm"), fps))
            meta.append((vid, template, "validation" if k < n_val else "train"))

    start = time.perf_counter()
    workers = workers or min(len(os.sched_getaffinity(0)), 8)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            results = list(pool.map(_job, jobs, chunksize=8))
    else:
        results = [_job(j) for j in jobs]
    elapsed = time.perf_counter() - start

    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    for (vid, template, split), (_, placeholders) in zip(meta, results):
        splits[split].append({
            "id": vid, "label": _fill(template, placeholders),
            "template": template, "placeholders": placeholders,
        })
    _write_json(out / "labels.json", {class_name(t): str(i) for i, t in enumerate(templates)})
    for split, rows in splits.items():
        _write_json(out / f"{split}.json", sorted(rows, key=lambda r: int(r["id"])))
    if variant == "temporal":
        _write_json(out / "reverse_pairs.json", reverse_pairs())
    _write_json(out / "dataset_info.json", {
        "generator": "gta_core.data.synth", "generator_version": GENERATOR_VERSION,
        "seed": seed, "variant": variant, "videos_per_class": videos_per_class,
        "num_classes": len(templates), "num_videos": total, "validation_fraction": validation_fraction,
        "height": height, "width": width, "frames": frames, "fps": fps, "clutter": clutter,
        "codec": "vp9", "container": "webm",
        "command_line": command_line or f"generate({str(out)!r}, seed={seed}, variant={variant!r}, "
                                        f"videos_per_class={videos_per_class}, size='{height}x{width}', "
                                        f"frames={frames}, fps={fps}, clutter={clutter!r}, "
                                        f"validation_fraction={validation_fraction})",
        "seconds": round(elapsed, 1), "workers": workers,
    })
    return out


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def register(subparsers) -> None:
    """The `synth` command (defined in synth_cli.py, which imports this module)."""
    from .synth_cli import register as register_command

    register_command(subparsers)
