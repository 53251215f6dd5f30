"""synth-signs: a procedurally generated, offline look-alike of GTSRB.

Backdoor experiments in benchbd need a realistic traffic-sign task for tests and
for the default experiment matrix, and these must run without a network or a
dataset download. synth-signs stands in for GTSRB: 43 classes with GTSRB's sign
shapes and colours, speed-limit digits, arrows and pictograms, rendered at
32x32 onto textured street-like backgrounds with GTSRB's class imbalance and
its nuisances (dark, low-contrast, blurred, off-centre and rotated signs, poles
and neighbouring signs). The same seed always yields the same arrays.

With ``frames`` > 1 the training split is, like GTSRB's, tracks: several views
of one physical sign (GTSRB: 1,307 signs filmed in tracks of about 30 frames)
that share the sign, its scene and its lighting and differ in size, crop, tilt,
sharpness and noise, so that a poisoned image has clean siblings with its true
label that only the trigger tells apart. The test split is independent signs.

Pipeline: every class is drawn once per style variant as an antialiased RGBA
template; each view then warps one template with an affine map (Pillow), and
composites it onto its track's background with vectorised numpy photometrics.
Pixel arrays only see float32 basic arithmetic (no transcendental functions, no
BLAS), so the output does not depend on the CPU's SIMD flavour.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchbd.data.images import largest_indices

NUM_CLASSES = 43
#: Bump when the generator's output changes: prepared caches are named by it, so stale ones are not reused.
VERSION = 1
#: Views of one physical sign in a training track by default (GTSRB's tracks hold about 30): one, every image
#: its own sign (``frames``; docs/findings.md, "synth-signs with tracks", measures what more views do).
FRAMES = 1
IMAGE_SIZE = 32

# Training images per class in the real GTSRB; synth-signs keeps these proportions.
GTSRB_TRAIN_COUNTS = np.array(
    [210, 2220, 2250, 1410, 1980, 1860, 420, 1440, 1410, 1470, 2010, 1320, 2100, 2160, 780,
     630, 420, 1110, 1200, 210, 360, 330, 390, 510, 270, 1500, 600, 240, 540, 270, 450,
     780, 240, 689, 420, 1200, 390, 210, 2070, 300, 360, 240, 240],
    dtype=np.int64,
)

_DRAW_SIZE = 256  # templates are drawn at this size, then downsampled for antialiasing
_WARP_SIZE = 2 * IMAGE_SIZE  # size of templates and warped signs, which are then 2x2-averaged to IMAGE_SIZE
_VARIANTS = 5  # style variants (rim width, shades, stroke weight, ...) per class
_CHUNK = 256  # images composited at once, bounding memory use

RGB = tuple[int, int, int]
Point = tuple[float, float]


def class_counts(n: int) -> np.ndarray:
    """Examples per class for a split of n images: GTSRB's proportions, each class at least min(5, n // 43)."""
    if n < NUM_CLASSES:
        raise ValueError(f"a split needs at least {NUM_CLASSES} images, got {n}")
    floor = min(5, n // NUM_CLASSES)
    quota = GTSRB_TRAIN_COUNTS / GTSRB_TRAIN_COUNTS.sum() * (n - floor * NUM_CLASSES)
    counts = np.floor(quota).astype(np.int64)
    largest_remainders = np.argsort(counts - quota, kind="stable")[: n - floor * NUM_CLASSES - counts.sum()]
    counts[largest_remainders] += 1
    return counts + floor


def generate_synth_signs(
    seed: int = 0, n_train: int = 8600, n_test: int = 2580, classes: int | None = None, frames: int = FRAMES
) -> dict[str, np.ndarray]:
    """Generate synth-signs with n_train/n_test images (seed >= 0).

    Returns {"x_train": uint8 (n_train, 32, 32, 3), "y_train": int64 (n_train,), "x_test", "y_test", and
    "train_track", "train_frame" (n_train,): each training image's physical sign and its place in that sign's
    track}. The training split is tracks of ``frames`` views of one sign, as GTSRB's are of about 30 (a class's
    last track may be shorter; 1, the default, makes every image its own sign), in shuffled order; the test split
    is independent signs, one view each. Both splits share the class templates but draw their jitter from
    independent streams. ``classes``: only the images of the ``classes`` classes GTSRB has most images of (those
    ``gtsrb:classes=N`` keeps) of the n_train/n_test split (each class as many as in the whole split), relabelled
    0..classes-1 in index order; the other classes' signs still appear as neighbouring distractors.
    """
    if classes is not None and not 2 <= classes <= NUM_CLASSES:
        raise ValueError(f"classes must be between 2 and {NUM_CLASSES}, got {classes}")
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    templates = _render_templates(np.random.default_rng([seed, 0]))
    distractors = [t for variants in templates for t in variants] + _plates()
    kept = np.arange(NUM_CLASSES) if classes is None else largest_indices(GTSRB_TRAIN_COUNTS, classes)
    data = {}
    for stream, split, n, views in ((1, "train", n_train, frames), (2, "test", n_test, 1)):
        rng = np.random.default_rng([seed, stream])
        track_labels, track_lengths = _tracks(class_counts(n)[kept], kept, views, rng)
        labels = np.repeat(track_labels, track_lengths)
        track = np.repeat(np.arange(len(track_lengths)), track_lengths)
        frame = np.arange(len(labels)) - np.repeat(np.cumsum(track_lengths) - track_lengths, track_lengths)
        progress = (frame + 0.5) / np.repeat(track_lengths, track_lengths)
        images = np.concatenate([
            _render_chunk(rng, labels[chunk], track[chunk] - track[chunk][0], progress[chunk], templates, distractors)
            for chunk in _whole_track_chunks(track)
        ])
        # A track's views rendered together, then scattered (tracks of one view are in random order already).
        order = rng.permutation(len(labels)) if views > 1 else np.arange(len(labels))
        data[f"x_{split}"] = images[order]
        data[f"y_{split}"] = np.searchsorted(kept, labels[order]).astype(np.int64)
        if split == "train":
            data.update(train_track=track[order], train_frame=frame[order])
    return data


def _tracks(counts: np.ndarray, labels: np.ndarray, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each class's ``counts`` images cut into tracks of ``frames`` views (the last one shorter), in random order:
    the tracks' labels and lengths."""
    lengths = [np.minimum(frames, count - np.arange(0, count, frames)) for count in counts]
    track_labels = np.repeat(labels, [len(class_lengths) for class_lengths in lengths])
    order = rng.permutation(len(track_labels))
    return track_labels[order], np.concatenate(lengths)[order]


def _whole_track_chunks(track: np.ndarray) -> list[slice]:
    """Slices of about _CHUNK images that never split a track (``track`` sorted)."""
    starts = np.flatnonzero(np.diff(track, prepend=-1))
    chunks, begin = [], 0
    for start in starts[1:]:
        if start - begin >= _CHUNK:
            chunks.append(slice(begin, start))
            begin = start
    return [*chunks, slice(begin, len(track))]


# ---------------------------------------------------------------------------
# Sign templates


@dataclass(frozen=True)
class _Style:
    """Per-variant look of a sign: physical signs differ in wear, print and make."""

    rim: float  # width of the red rim, in sign radii
    stroke: float  # multiplier on pictogram line widths
    glyph: float  # multiplier on the glyph size
    condense: float  # multiplier on the width of digits
    bold: int  # extra stroke around digit outlines, in font pixels
    red: RGB
    blue: RGB
    yellow: RGB
    white: RGB
    ink: RGB
    grey: RGB


def _random_style(rng: np.random.Generator) -> _Style:
    fade = rng.uniform(0, 0.4)  # weathering pulls every colour towards grey

    def shade(base: RGB, spread: int) -> RGB:
        jittered = [c + rng.integers(-spread, spread + 1) for c in base]
        grey = sum(jittered) / 3
        return tuple(int(np.clip(round(c + (grey - c) * fade), 0, 255)) for c in jittered)

    return _Style(
        rim=float(rng.uniform(0.15, 0.22)),
        stroke=float(rng.uniform(0.85, 1.15)),
        glyph=float(rng.uniform(0.9, 1.05)),
        condense=float(rng.uniform(0.85, 1.05)),
        bold=int(rng.integers(0, 7)),
        red=shade((200, 30, 40), 25),
        blue=shade((25, 75, 170), 25),
        yellow=shade((235, 185, 20), 20),
        white=shade((240, 240, 235), 12),
        ink=shade((25, 25, 30), 15),
        grey=shade((110, 110, 110), 25),
    )


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=160)


class _Pen:
    """Draws in local units: (0, 0) is `origin` and one unit spans `unit` pixels (negative x unit mirrors)."""

    def __init__(self, image: Image.Image, origin: Point, unit: Point):
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.origin = origin
        self.unit = unit

    def sub(self, x: float, y: float, size: float) -> _Pen:
        """A pen whose unit is `size` of this one's, centred on (x, y)."""
        return _Pen(self.image, self._xy((x, y)), (self.unit[0] * size, self.unit[1] * size))

    def mirrored(self) -> _Pen:
        return _Pen(self.image, self.origin, (-self.unit[0], self.unit[1]))

    def _xy(self, point: Point) -> Point:
        return self.origin[0] + point[0] * self.unit[0], self.origin[1] + point[1] * self.unit[1]

    def _px(self, length: float) -> float:
        return length * abs(self.unit[1])

    def polygon(self, points: Sequence[Point], fill: RGB) -> None:
        self.draw.polygon([self._xy(p) for p in points], fill=fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill)

    def disc(self, x: float, y: float, r: float, fill: RGB) -> None:
        cx, cy = self._xy((x, y))
        self.draw.ellipse((cx - self._px(r), cy - self._px(r), cx + self._px(r), cy + self._px(r)), fill=fill)

    def ring(self, x: float, y: float, r: float, width: float, fill: RGB) -> None:
        cx, cy = self._xy((x, y))
        box = (cx - self._px(r), cy - self._px(r), cx + self._px(r), cy + self._px(r))
        self.draw.ellipse(box, outline=fill, width=round(self._px(width)))

    def line(self, points: Sequence[Point], width: float, fill: RGB) -> None:
        """A thick polyline with round joints and caps."""
        self.draw.line([self._xy(p) for p in points], fill=fill, width=round(self._px(width)), joint="curve")
        for x, y in (points[0], points[-1]):
            self.disc(x, y, width / 2, fill)

    def arrow(self, points: Sequence[Point], width: float, head: float, fill: RGB) -> None:
        """A polyline ending in a triangular head whose tip is the last point."""
        (x0, y0), (x1, y1) = points[-2], points[-1]
        length = math.hypot(x1 - x0, y1 - y0)
        dx, dy = (x1 - x0) / length, (y1 - y0) / length
        bx, by = x1 - dx * head, y1 - dy * head
        self.line([*points[:-1], (bx, by)], width, fill)
        self.polygon([(x1, y1), (bx - dy * head * 0.8, by + dx * head * 0.8), (bx + dy * head * 0.8, by - dx * head * 0.8)], fill)

    def text(self, text: str, width: float, height: float, bold: int, fill: RGB) -> None:
        """Text squeezed into a width x height box centred on the origin."""
        mask = Image.new("L", (len(text) * 160, 240))
        ImageDraw.Draw(mask).text((8 + bold, 8 + bold), text, font=_font(), fill=255, stroke_width=bold, stroke_fill=255)
        mask = mask.crop(mask.getbbox())
        size = round(self._px(width)), round(self._px(height))
        mask = mask.resize(size, Image.Resampling.LANCZOS)
        x, y = self._xy((0, 0))
        self.image.paste(Image.new("RGBA", size, fill), (round(x - size[0] / 2), round(y - size[1] / 2)), mask)


def _bezier(*controls: Point, steps: int = 24) -> list[Point]:
    """Points along the Bezier curve with these control points (de Casteljau)."""
    points = []
    for i in range(steps + 1):
        t = i / steps
        layer = list(controls)
        while len(layer) > 1:
            layer = [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for a, b in zip(layer, layer[1:])]
        points.append(layer[0])
    return points


def _polar(cx: float, cy: float, r: float, deg: float) -> Point:
    """The point at distance r from (cx, cy) in direction deg (degrees, clockwise on screen from +x)."""
    return cx + r * math.cos(math.radians(deg)), cy + r * math.sin(math.radians(deg))


def _arc(cx: float, cy: float, r: float, start_deg: float, end_deg: float, steps: int = 16) -> list[Point]:
    """Points along a circular arc from start_deg to end_deg."""
    return [_polar(cx, cy, r, start_deg + (end_deg - start_deg) * i / steps) for i in range(steps + 1)]


def _regular_polygon(cx: float, cy: float, r: float, sides: int, start_deg: float) -> list[Point]:
    return _arc(cx, cy, r, start_deg, start_deg + 360, sides)[:-1]


# Sign bodies draw a sign in sign units (radius 1) and return the pen for its glyph, if it has one.
# Glyphs draw in glyph units (roughly the box [-1, 1]^2).
Body = Callable[[_Pen, _Style], "_Pen | None"]
Glyph = Callable[[_Pen, _Style], None]

_TRIANGLE_R = 1.12  # circumradius that makes a triangle as tall as it is wide within the unit disc


def _triangle(cy: float, r: float, up: bool) -> list[Point]:
    return _regular_polygon(0, cy, r, 3, -90 if up else 90)


def _prohibitory(pen: _Pen, s: _Style) -> _Pen:
    pen.disc(0, 0, 1, s.white)
    pen.disc(0, 0, 0.95, s.red)
    pen.disc(0, 0, 0.95 - s.rim, s.white)
    return pen.sub(0, 0, 0.62 * s.glyph)


def _no_entry(pen: _Pen, s: _Style) -> _Pen:
    pen.disc(0, 0, 1, s.white)
    pen.disc(0, 0, 0.95, s.red)
    return pen.sub(0, 0, 0.62 * s.glyph)


def _mandatory(pen: _Pen, s: _Style) -> _Pen:
    pen.disc(0, 0, 1, s.white)
    pen.disc(0, 0, 0.94, s.blue)
    return pen.sub(0, 0, 0.62 * s.glyph)


def _derestriction(pen: _Pen, s: _Style) -> _Pen:
    pen.disc(0, 0, 1, s.white)
    pen.ring(0, 0, 0.99, 0.05, s.grey)
    return pen.sub(0, 0, 0.62 * s.glyph)


def _warning(pen: _Pen, s: _Style) -> _Pen:
    cy = _TRIANGLE_R - 0.84  # centroid of a triangle spanning y in [-0.84, 0.84]
    pen.polygon(_triangle(cy, _TRIANGLE_R, up=True), s.white)
    pen.polygon(_triangle(cy, _TRIANGLE_R - 0.08, up=True), s.red)
    pen.polygon(_triangle(cy, _TRIANGLE_R - 0.08 - 2 * s.rim, up=True), s.white)
    return pen.sub(0, cy - 0.06, 0.4 * s.glyph)


def _yield(pen: _Pen, s: _Style) -> None:
    cy = 0.84 - _TRIANGLE_R
    pen.polygon(_triangle(cy, _TRIANGLE_R, up=False), s.white)
    pen.polygon(_triangle(cy, _TRIANGLE_R - 0.08, up=False), s.red)
    pen.polygon(_triangle(cy, _TRIANGLE_R - 0.08 - 2 * s.rim, up=False), s.white)


def _stop(pen: _Pen, s: _Style) -> None:
    pen.polygon(_regular_polygon(0, 0, 1, 8, 22.5), s.white)
    pen.polygon(_regular_polygon(0, 0, 0.93, 8, 22.5), s.red)
    pen.sub(0, 0, 0.62 * s.glyph).text("STOP", 2.3 * s.condense, 0.75, s.bold, s.white)


def _priority(pen: _Pen, s: _Style) -> None:
    pen.polygon(_regular_polygon(0, 0, 1, 4, 0), s.grey)
    pen.polygon(_regular_polygon(0, 0, 0.96, 4, 0), s.white)
    pen.polygon(_regular_polygon(0, 0, 0.96 - 1.4 * s.rim, 4, 0), s.yellow)


def _digits(pen: _Pen, s: _Style, text: str, colour: RGB | None = None) -> None:
    pen.text(text, (1.45 if len(text) == 2 else 1.8) * s.condense, 1.2, s.bold, colour or s.ink)


def _stripes(pen: _Pen, s: _Style) -> None:
    """The diagonal 'end of restriction' stripes, clipped to the inner disc."""
    radius = 1.45
    for offset in (-0.3, -0.15, 0.0, 0.15, 0.3):
        # Chords running from top-right to bottom-left, offset along the (1, 1) diagonal.
        centre = offset / math.sqrt(2)
        half = math.sqrt(radius * radius - offset * offset) / math.sqrt(2)
        pen.line([(centre + half, centre - half), (centre - half, centre + half)], 0.07, s.grey)


def _car(pen: _Pen, x: float, y: float, w: float, fill: RGB) -> None:
    """A car seen from behind, w wide, centred on (x, y)."""
    pen.rect(x - w / 2, y - 0.05 * w, x + w / 2, y + 0.4 * w, fill)
    pen.polygon([(x - 0.4 * w, y), (x - 0.3 * w, y - 0.45 * w), (x + 0.3 * w, y - 0.45 * w), (x + 0.4 * w, y)], fill)
    for side in (-1, 1):
        wx = x + side * 0.35 * w
        pen.rect(wx - 0.12 * w, y + 0.35 * w, wx + 0.12 * w, y + 0.6 * w, fill)


def _truck_rear(pen: _Pen, x: float, y: float, w: float, fill: RGB) -> None:
    """A lorry seen from behind, w wide, centred on (x, y)."""
    pen.rect(x - w / 2, y - 0.75 * w, x + w / 2, y + 0.45 * w, fill)
    for side in (-1, 1):
        wx = x + side * 0.32 * w
        pen.rect(wx - 0.14 * w, y + 0.4 * w, wx + 0.14 * w, y + 0.65 * w, fill)


def _truck_side(pen: _Pen, s: _Style) -> None:
    pen.rect(-0.95, -0.5, 0.3, 0.3, s.ink)
    pen.polygon([(0.38, -0.2), (0.75, -0.2), (0.95, 0.05), (0.95, 0.3), (0.38, 0.3)], s.ink)
    for wx in (-0.65, -0.3, 0.65):
        pen.disc(wx, 0.38, 0.16, s.ink)


def _no_passing(pen: _Pen, s: _Style, truck: bool = False, ended: bool = False) -> None:
    """A red car (or lorry) beside a black car; all grey and struck through when the restriction ends."""
    left, right = (s.grey, s.grey) if ended else (s.red, s.ink)
    (_truck_rear if truck else _car)(pen, -0.48, 0.1, 0.75, left)
    _car(pen, 0.48, 0.1, 0.75, right)
    if ended:
        _stripes(pen, s)


def _person(pen: _Pen, s: _Style) -> None:
    w = 0.2 * s.stroke
    pen.disc(0.05, -0.78, 0.19, s.ink)
    pen.line([(0.02, -0.55), (-0.05, 0.15)], 1.3 * w, s.ink)
    pen.line([(-0.35, 0.95), (-0.05, 0.15), (0.3, 0.95)], w, s.ink)
    pen.line([(-0.35, 0.0), (0.0, -0.4), (0.35, -0.05)], 0.8 * w, s.ink)


def _children(pen: _Pen, s: _Style) -> None:
    _person(pen.sub(-0.4, -0.05, 0.9), s)
    _person(pen.sub(0.45, 0.3, 0.65), s)


def _exclamation(pen: _Pen, s: _Style) -> None:
    pen.polygon([(-0.17, -0.95), (0.17, -0.95), (0.08, 0.4), (-0.08, 0.4)], s.ink)
    pen.disc(0, 0.75, 0.17, s.ink)


def _crossroads(pen: _Pen, s: _Style) -> None:
    pen.line([(0, 0.95), (0, -0.95)], 0.38 * s.stroke, s.ink)
    pen.line([(-0.75, -0.05), (0.75, -0.05)], 0.2 * s.stroke, s.ink)


def _curve(pen: _Pen, s: _Style) -> None:
    pen.arrow(_bezier((0.35, 0.95), (0.35, -0.6), (-0.75, -0.6)), 0.25 * s.stroke, 0.5, s.ink)


def _double_curve(pen: _Pen, s: _Style) -> None:
    pen.arrow(_bezier((0.2, 0.95), (-1.2, 0.3), (1.1, -0.1), (-0.1, -0.95)), 0.22 * s.stroke, 0.45, s.ink)


def _bumps(pen: _Pen, s: _Style) -> None:
    bumps = [*_arc(-0.45, 0.6, 0.4, 180, 360), *_arc(0.45, 0.6, 0.4, 180, 360)]
    pen.polygon([(-0.95, 0.6), *bumps, (0.95, 0.6), (0.95, 0.85), (-0.95, 0.85)], s.ink)


def _slippery(pen: _Pen, s: _Style) -> None:
    _car(pen, 0, -0.45, 0.95, s.ink)
    for x in (-0.4, 0.4):
        wave = [(x + 0.2 * math.sin(3 * math.pi * i / 12), 0.25 + 0.7 * i / 12) for i in range(13)]
        pen.line(wave, 0.13 * s.stroke, s.ink)


def _narrows(pen: _Pen, s: _Style) -> None:
    pen.line([(-0.45, 0.95), (-0.45, -0.95)], 0.22 * s.stroke, s.ink)
    pen.line([(0.6, 0.95), (0.6, 0.2), (0.15, -0.35), (0.15, -0.95)], 0.22 * s.stroke, s.ink)


def _road_work(pen: _Pen, s: _Style) -> None:
    w = 0.2 * s.stroke
    pen.disc(0.0, -0.72, 0.18, s.ink)
    pen.line([(-0.05, -0.5), (-0.3, 0.2)], 1.3 * w, s.ink)
    pen.line([(-0.65, 0.95), (-0.3, 0.2), (0.0, 0.95)], w, s.ink)
    pen.line([(-0.1, -0.35), (0.35, -0.05)], 0.8 * w, s.ink)
    pen.line([(0.15, -0.25), (0.6, 0.6)], 0.5 * w, s.ink)
    pen.polygon([(0.3, 0.95), (0.65, 0.5), (0.98, 0.95)], s.ink)


def _signals(pen: _Pen, s: _Style) -> None:
    pen.rect(-0.38, -1.0, 0.38, 1.0, s.ink)
    for y, colour in ((-0.62, s.red), (0.0, s.yellow), (0.62, (40, 160, 70))):
        pen.disc(0, y, 0.26, colour)


def _bicycle(pen: _Pen, s: _Style) -> None:
    w = 0.1 * s.stroke
    for x in (-0.55, 0.55):
        pen.ring(x, 0.45, 0.4, w, s.ink)
    pen.line([(-0.55, 0.45), (-0.1, -0.15), (0.4, -0.15), (0.55, 0.45)], w, s.ink)
    pen.line([(-0.1, -0.15), (0.0, 0.45), (-0.55, 0.45)], w, s.ink)
    pen.line([(0.4, -0.15), (0.32, -0.45), (0.5, -0.5)], w, s.ink)
    pen.line([(-0.25, -0.32), (0.0, -0.32)], 1.5 * w, s.ink)


def _snowflake(pen: _Pen, s: _Style) -> None:
    w = 0.13 * s.stroke
    for deg in (0, 60, 120):
        pen.line([_polar(0, 0, 0.95, deg), _polar(0, 0, 0.95, deg + 180)], w, s.ink)
    for deg in range(0, 360, 60):
        tx, ty = _polar(0, 0, 0.55, deg)
        for tick in (deg - 45, deg + 45):
            pen.line([(tx, ty), _polar(tx, ty, 0.3, tick)], 0.7 * w, s.ink)


def _deer(pen: _Pen, s: _Style) -> None:
    pen.line([(-0.55, 0.05), (0.35, -0.2)], 0.42, s.ink)
    pen.line([(0.3, -0.2), (0.65, -0.6)], 0.2, s.ink)
    pen.disc(0.72, -0.62, 0.15, s.ink)
    pen.line([(0.62, -0.7), (0.5, -0.98)], 0.08, s.ink)
    pen.line([(0.75, -0.72), (0.85, -0.98)], 0.08, s.ink)
    pen.line([(0.3, -0.1), (0.85, 0.3)], 0.13, s.ink)
    pen.line([(-0.5, 0.1), (-0.9, 0.65)], 0.13, s.ink)
    pen.line([(-0.45, 0.1), (-0.55, 0.85)], 0.13, s.ink)


def _roundabout(pen: _Pen, s: _Style) -> None:
    for start in (-60, 60, 180):
        pen.arrow(_arc(0, 0, 0.62, start + 15, start + 95), 0.22 * s.stroke, 0.42, s.white)


def _bar(pen: _Pen, s: _Style) -> None:
    pen.rect(-1.1, -0.28, 1.1, 0.28, s.white)


# Blue-sign arrows; their mirror images are drawn with pen.mirrored().


def _ahead(pen: _Pen, s: _Style) -> None:
    pen.arrow([(0, 0.95), (0, -0.95)], 0.32 * s.stroke, 0.6, s.white)


def _turn_right(pen: _Pen, s: _Style) -> None:
    pen.arrow([(-0.35, 0.95), *_arc(0.15, 0.0, 0.5, 180, 270), (0.95, -0.5)], 0.3 * s.stroke, 0.55, s.white)


def _ahead_or_right(pen: _Pen, s: _Style) -> None:
    pen.arrow([(-0.25, 0.95), (-0.25, -0.95)], 0.28 * s.stroke, 0.5, s.white)
    pen.arrow([*_arc(0.25, 0.3, 0.5, 180, 270), (0.95, -0.2)], 0.24 * s.stroke, 0.45, s.white)


def _keep_right(pen: _Pen, s: _Style) -> None:
    pen.arrow([(-0.6, -0.6), (0.65, 0.65)], 0.32 * s.stroke, 0.6, s.white)


def _mirror(glyph: Glyph) -> Glyph:
    return lambda pen, s: glyph(pen.mirrored(), s)


def _speed(text: str) -> Glyph:
    return lambda pen, s: _digits(pen, s, text)


def _end_of_80(pen: _Pen, s: _Style) -> None:
    _digits(pen, s, "80", s.grey)
    _stripes(pen, s)


# (body, glyph) per class, in GTSRB's class order.
_CLASSES: list[tuple[Body, Glyph | None]] = [
    *[(_prohibitory, _speed(t)) for t in ("20", "30", "50", "60", "70", "80")],
    (_derestriction, _end_of_80),
    (_prohibitory, _speed("100")),
    (_prohibitory, _speed("120")),
    (_prohibitory, _no_passing),
    (_prohibitory, functools.partial(_no_passing, truck=True)),
    (_warning, _crossroads),
    (_priority, None),
    (_yield, None),
    (_stop, None),
    (_prohibitory, None),
    (_prohibitory, _truck_side),
    (_no_entry, _bar),
    (_warning, _exclamation),
    (_warning, _curve),
    (_warning, _mirror(_curve)),
    (_warning, _double_curve),
    (_warning, _bumps),
    (_warning, _slippery),
    (_warning, _narrows),
    (_warning, _road_work),
    (_warning, _signals),
    (_warning, _person),
    (_warning, _children),
    (_warning, _bicycle),
    (_warning, _snowflake),
    (_warning, _deer),
    (_derestriction, _stripes),
    (_mandatory, _turn_right),
    (_mandatory, _mirror(_turn_right)),
    (_mandatory, _ahead),
    (_mandatory, _ahead_or_right),
    (_mandatory, _mirror(_ahead_or_right)),
    (_mandatory, _keep_right),
    (_mandatory, _mirror(_keep_right)),
    (_mandatory, _roundabout),
    (_derestriction, functools.partial(_no_passing, ended=True)),
    (_derestriction, functools.partial(_no_passing, truck=True, ended=True)),
]


def _to_template(drawing: Image.Image) -> Image.Image:
    """Downsample a supersampled RGBA drawing to a premultiplied-alpha warp template."""
    return drawing.convert("RGBa").resize((_WARP_SIZE, _WARP_SIZE), Image.Resampling.BOX)


def _sign_pen(drawing: Image.Image) -> _Pen:
    half = _DRAW_SIZE / 2
    return _Pen(drawing, (half, half), (half * 0.97, half * 0.97))


def _render_templates(rng: np.random.Generator) -> list[list[Image.Image]]:
    """_VARIANTS premultiplied RGBa templates per class, the sign filling the frame."""
    templates = []
    for body, glyph in _CLASSES:
        variants = []
        for _ in range(_VARIANTS):
            style = _random_style(rng)
            drawing = Image.new("RGBA", (_DRAW_SIZE, _DRAW_SIZE))
            glyph_pen = body(_sign_pen(drawing), style)
            if glyph is not None:
                glyph(glyph_pen, style)
            variants.append(_to_template(drawing))
        templates.append(variants)
    return templates


def _plates() -> list[Image.Image]:
    """Rectangular signs that appear next to real signs: a white supplementary plate and a blue square."""
    plate = Image.new("RGBA", (_DRAW_SIZE, _DRAW_SIZE))
    pen = _sign_pen(plate)
    pen.rect(-1, -0.45, 1, 0.45, (30, 30, 30))
    pen.rect(-0.94, -0.39, 0.94, 0.39, (235, 235, 230))
    pen.line([(-0.7, -0.1), (0.7, -0.1)], 0.14, (30, 30, 30))
    pen.line([(-0.5, 0.15), (0.5, 0.15)], 0.1, (30, 30, 30))
    square = Image.new("RGBA", (_DRAW_SIZE, _DRAW_SIZE))
    pen = _sign_pen(square)
    pen.rect(-0.7, -0.7, 0.7, 0.7, (235, 235, 230))
    pen.rect(-0.65, -0.65, 0.65, 0.65, (30, 80, 170))
    pen.line([(-0.2, 0.45), (-0.2, -0.4), (0.1, -0.4)], 0.16, (235, 235, 230))
    pen.ring(0.1, -0.15, 0.25, 0.16, (235, 235, 230))
    return [_to_template(plate), _to_template(square)]


# ---------------------------------------------------------------------------
# Per-sample rendering


def _warp(template: Image.Image, scale: float, angle: float, aspect: float, shear: float, shift: Point) -> np.ndarray:
    """Warp a template: scale (1 = as large as the frame), rotate (radians), squash and shear, then shift (frame units)."""
    cos, sin = math.cos(angle), math.sin(angle)
    # Forward map A = scale * rotation @ shear @ diag(aspect, 1); Pillow wants its inverse.
    a, b = scale * cos * aspect, scale * (cos * shear - sin)
    c, d = scale * sin * aspect, scale * (sin * shear + cos)
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    centre = _WARP_SIZE / 2
    ox, oy = centre + shift[0] * _WARP_SIZE, centre + shift[1] * _WARP_SIZE
    data = (ia, ib, centre - ia * ox - ib * oy, ic, id_, centre - ic * ox - id_ * oy)
    warped = template.transform((_WARP_SIZE, _WARP_SIZE), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(warped.reduce(_WARP_SIZE // IMAGE_SIZE))


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) * np.float32(1 / 255)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly upsample (m, g, g, c) grids to (m, size, size, c)."""
    g = grid.shape[1]
    pos = (np.arange(size, dtype=np.float32) + 0.5) * np.float32((g - 1) / size)
    lo = pos.astype(np.int64)
    hi = np.minimum(lo + 1, g - 1)
    w = (pos - lo.astype(np.float32))[:, None]
    # Interpolate along x while the grid is small, then along y, where gathers copy whole rows.
    columns = grid[:, :, lo] * (1 - w) + grid[:, :, hi] * w
    return columns[:, lo] * (1 - w[:, None]) + columns[:, hi] * w[:, None]


# Scene palettes (sky, foliage, building, dark) and each scene's texture amplitudes
# for (coarse, medium, fine) smooth noise and rectangular blocks.
_PALETTES = np.array(
    [
        [[0.55, 0.65, 0.80], [0.75, 0.80, 0.88], [0.86, 0.87, 0.90], [0.45, 0.55, 0.70]],
        [[0.18, 0.25, 0.12], [0.30, 0.38, 0.18], [0.12, 0.15, 0.08], [0.35, 0.30, 0.18]],
        [[0.45, 0.42, 0.40], [0.62, 0.57, 0.50], [0.50, 0.30, 0.25], [0.30, 0.30, 0.32]],
        [[0.08, 0.08, 0.10], [0.16, 0.15, 0.13], [0.05, 0.06, 0.05], [0.22, 0.20, 0.22]],
    ],
    dtype=np.float32,
)
_TEXTURES = np.array(
    [[0.06, 0.03, 0.01, 0.02], [0.10, 0.12, 0.10, 0.0], [0.05, 0.04, 0.02, 0.15], [0.04, 0.04, 0.03, 0.04]],
    dtype=np.float32,
)
_SCENE_PROBS = [0.25, 0.3, 0.25, 0.2]


def _backgrounds(rng: np.random.Generator, m: int) -> np.ndarray:
    """m street-like backgrounds: a two-colour gradient plus smooth noise and facade-like blocks."""
    f32 = np.float32
    scene = rng.choice(len(_PALETTES), size=m, p=_SCENE_PROBS)
    other = np.where(rng.random(m) < 0.7, scene, rng.choice(len(_PALETTES), size=m, p=_SCENE_PROBS))
    jitter = rng.normal(0, 0.06, size=(2, m, 1, 1, 3)).astype(f32)
    c1 = _PALETTES[scene, rng.integers(0, 4, m)][:, None, None] + jitter[0]
    c2 = _PALETTES[other, rng.integers(0, 4, m)][:, None, None] + jitter[1]

    coords = (np.arange(IMAGE_SIZE, dtype=f32) - f32(IMAGE_SIZE / 2)) / f32(IMAGE_SIZE)
    direction = rng.normal(size=(2, m, 1, 1)).astype(f32)
    direction *= rng.uniform(0.5, 2.5, (m, 1, 1)).astype(f32) / np.sqrt(direction[0] ** 2 + direction[1] ** 2)
    t = np.clip(0.5 + direction[0] * coords[None, None, :] + direction[1] * coords[None, :, None], 0, 1)

    # Smooth noise: octaves of 3x3, 6x6 and 12x12 random grids, summed at 12x12 and then upsampled once.
    amplitude = _TEXTURES[scene] * rng.uniform(0.5, 1.5, (m, 4)).astype(f32)
    noise = np.zeros((m, 12, 12, 3), f32)
    for octave, cells in enumerate((3, 6, 12)):
        grid = rng.standard_normal((m, cells, cells, 1), dtype=f32) + 0.15 * rng.standard_normal((m, cells, cells, 3), dtype=f32)
        noise += amplitude[:, octave, None, None, None] * (grid if cells == 12 else _upsample(grid, 12))

    # Facade-like blocks: a random grid of cells with per-image cell size and phase.
    cell = rng.integers(4, 13, size=(m, 2))
    phase = rng.integers(0, 12, size=(m, 2))
    pixel = np.arange(IMAGE_SIZE)
    block_y = (pixel[None, :] + phase[:, :1]) // cell[:, :1]
    block_x = (pixel[None, :] + phase[:, 1:]) // cell[:, 1:]
    cells_per_side = IMAGE_SIZE // 4 + 4
    blocks = rng.standard_normal((m, cells_per_side * cells_per_side), dtype=f32) * amplitude[:, 3, None]
    blocks = np.take_along_axis(blocks, (block_y[:, :, None] * cells_per_side + block_x[:, None, :]).reshape(m, -1), axis=1)

    return c1 + (c2 - c1) * t[..., None] + _upsample(noise, IMAGE_SIZE) + blocks.reshape(m, IMAGE_SIZE, IMAGE_SIZE, 1)


def _add_pole(image: np.ndarray, x: np.ndarray, top: np.ndarray, width: np.ndarray, grey: np.ndarray) -> None:
    """Paint, in place, antialiased vertical poles from height `top` down (all in pixels, one per image)."""
    pixel = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    across = np.clip(width[:, None] / 2 + 0.5 - np.abs(pixel[None, :] - x[:, None]), 0, 1)
    down = np.clip(pixel[None, :] - top[:, None], 0, 1)
    coverage = (down[:, :, None] * across[:, None, :])[..., None]
    image *= 1 - coverage
    image += coverage * grey[:, None, None, None]


def _composite(image: np.ndarray, premultiplied: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Lay premultiplied RGBa layers, their colours scaled by per-image (m, 3) gains, over images."""
    alpha = premultiplied[..., 3:]
    return image * (1 - alpha) + premultiplied[..., :3] * gain[:, None, None, :]


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur with edge replication."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    vertical = padded[:, :-2] + padded[:, 2:]
    vertical += padded[:, 1:-1]
    vertical += padded[:, 1:-1]
    blurred = vertical[:, :, :-2] + vertical[:, :, 2:]
    blurred += vertical[:, :, 1:-1]
    blurred += vertical[:, :, 1:-1]
    blurred *= np.float32(1 / 16)
    return blurred


def _column(values: np.ndarray) -> np.ndarray:
    """Per-image scalars as float32 (m, 1, 1, 1), to broadcast over (m, 32, 32, 3) images."""
    return values.astype(np.float32)[:, None, None, None]


def _render_chunk(
    rng: np.random.Generator,
    labels: np.ndarray,
    track: np.ndarray,
    progress: np.ndarray,
    templates: list[list[Image.Image]],
    distractors: list[Image.Image],
) -> np.ndarray:
    """Render one uint8 (m, 32, 32, 3) image per label.

    ``track`` (m,) numbers the physical signs 0..t-1 in the chunk (the views of one sign share their label);
    ``progress`` (m,) is each view's place along its track in (0, 1), 0.5 for a track of one. A track's views
    share the sign, its scene and its lighting; each has its own size (the sign grows by 10% as the camera nears),
    crop (up to a pixel), tilt, exposure, sharpness and sensor noise. The per-view draws are made only when some
    track has several views: with one view a track, the images are those synth-signs drew before it had tracks.
    """
    m, t = len(labels), int(track.max()) + 1
    several_views = m > t
    f32 = np.float32
    image = _backgrounds(rng, t)[track]

    # Sign geometry: size relative to the frame, rotation, perspective-like squash and shear, off-centre shift.
    base_scale = rng.uniform(0.55, 0.95, t)
    scale = base_scale[track] * (0.95 + 0.1 * progress)
    angle = np.clip(rng.normal(0, 0.09, t), -0.22, 0.22)[track]
    aspect = rng.uniform(0.8, 1.05, t)[track]
    shear = rng.uniform(-0.12, 0.12, t)[track]
    shift = (rng.uniform(-1, 1, (t, 2)) * ((1 - base_scale) / 2 + 0.06)[:, None])[track]
    if several_views:
        angle = angle + rng.normal(0, 0.01, m)
        shift = shift + rng.uniform(-0.03, 0.03, (m, 2))

    # Half the signs stand on a pole that runs down from their centre.
    pole_x = (0.5 + shift[:, 0]) * IMAGE_SIZE
    pole_top = np.where((rng.random(t) < 0.5)[track], (0.5 + shift[:, 1]) * IMAGE_SIZE, 2 * IMAGE_SIZE)
    pole_width = scale * rng.uniform(1.5, 3.0, t)[track]
    pole_grey = rng.uniform(0.2, 0.7, t)[track]
    _add_pole(image, pole_x.astype(f32), pole_top.astype(f32), pole_width.astype(f32), pole_grey.astype(f32))

    # A quarter have a neighbouring sign or plate sticking into the frame from above or below.
    near_tracks = np.flatnonzero(rng.random(t) < 0.25)
    neighbour = rng.integers(0, len(distractors), len(near_tracks))
    offset_x = rng.uniform(-0.3, 0.3, len(near_tracks))
    offset_y = rng.choice([-1.0, 1.0], len(near_tracks)) * rng.uniform(0.75, 0.95, len(near_tracks))
    if len(near_tracks):
        brightness = rng.uniform(0.5, 1.1, (len(near_tracks), 1)).astype(f32).repeat(3, axis=1)
        near = np.flatnonzero(np.isin(track, near_tracks))
        j = np.searchsorted(near_tracks, track[near])
        layers = np.stack([
            _warp(distractors[neighbour[k]], scale[i], angle[i], aspect[i], 0.0, (offset_x[k], offset_y[k]))
            for k, i in zip(j, near)
        ])
        image[near] = _composite(image[near], _unit(layers), brightness[j])

    variant = rng.integers(0, _VARIANTS, t)[track]
    signs = np.stack([
        _warp(templates[labels[i]][variant[i]], scale[i], angle[i], aspect[i], shear[i], (shift[i, 0], shift[i, 1]))
        for i in range(m)
    ])
    # The sign is lit differently from its background (shade, sunlight, a slightly tinted reflection).
    sign_gain = (rng.uniform(0.7, 1.3, (t, 1)) * rng.normal(1, 0.05, (t, 3)))[track]
    if several_views:
        sign_gain = sign_gain * rng.normal(1, 0.02, (m, 1))
    image = _composite(image, _unit(signs), sign_gain.astype(f32))
    return _photometrics(rng, image, track, progress)


def _photometrics(rng: np.random.Generator, image: np.ndarray, track: np.ndarray, progress: np.ndarray) -> np.ndarray:
    """Camera and lighting nuisances on float (m, 32, 32, 3) images, returned as uint8.

    Per track: lighting gradient, colour cast, exposure (a third of the images are dark, as in GTSRB), contrast
    and tone curve. Per view: blur (a track's far views blurrier, as GTSRB's small early frames scaled up),
    sensor noise and, where a track has several views, exposure flicker.
    """
    m, t = len(image), int(track.max()) + 1
    several_views = m > t
    f32 = np.float32
    coords = (np.arange(IMAGE_SIZE, dtype=f32) - f32(IMAGE_SIZE / 2)) / f32(IMAGE_SIZE)
    light = rng.uniform(-0.6, 0.6, (t, 2)).astype(f32)[track]
    image *= (1 + light[:, 0, None, None] * coords[None, None, :] + light[:, 1, None, None] * coords[None, :, None])[..., None]
    image *= rng.normal(1, 0.06, (t, 1, 1, 3)).astype(f32)[track]
    dark = rng.random(t) < 0.33
    exposure = np.where(dark, rng.uniform(0.16, 0.5, t), rng.uniform(0.5, 1.25, t))[track]
    if several_views:
        exposure = exposure * rng.normal(1, 0.04, m)
    image *= _column(exposure)

    mean = image.mean(axis=(1, 2, 3), keepdims=True)
    image = mean + (image - mean) * _column(rng.uniform(0.52, 1.1, t)[track])

    # Blur amount in [0, 1.8]: 0..1 blends towards one [1, 2, 1] blur, 1..1.8 onwards to two.
    blurred = _blur(image)
    twice_blurred = _blur(blurred)
    amount = np.clip(rng.uniform(0, 1.8, t)[track] + 0.6 * (0.5 - progress), 0, 1.8)
    first, second = _column(np.clip(amount, 0, 1)), _column(np.clip(amount - 1, 0, 1))
    image = (image * (1 - first) + blurred * first) * (1 - second) + twice_blurred * second

    # Schlick's bias curve x / ((1/b - 2)(1 - x) + 1): b < 0.5 darkens mid-tones, b > 0.5 lifts them.
    image = np.clip(image, 0, 1)
    bias = _column(rng.uniform(0.38, 0.62, t)[track])
    image = image / ((1 / bias - 2) * (1 - image) + 1)
    image += (rng.random(image.shape, dtype=f32) - f32(0.5)) * _column(rng.uniform(0.01, 0.1, t)[track])
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
