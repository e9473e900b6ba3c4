"""Synthetic FER2013: procedurally drawn 48x48 faces whose expression is the label.

The quick start and the tests use this instead of the real data set (no
download). Each face is drawn in its own coordinates (x right, y down, the
face ellipse spans x in [-1, 1]) and then placed with a random pose. The seven
expressions differ in three features, each with per-face jitter::

    class     brows                      eyes    mouth
    Angry     lowered, inner ends down   narrow  short, turned down
    Disgust   lowered, slightly slanted  narrow  tilted sneer
    Fear      raised, inner ends up      wide    wide open grimace
    Happy     level                      normal  smile
    Sad       inner ends up              normal  frown
    Surprise  raised high                wide    open O
    Neutral   level                      normal  flat line

Nuisances: face position, size, aspect and rotation, skin and background
gray levels, feature contrast, a linear lighting gradient, and Gaussian
pixel noise; so a small CNN learns the classes while a template match does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from keras_fer.data.csv_format import CLASS_NAMES, IMAGE_SIZE, USAGES, write_fer2013_csv

# Expression parameters per class, in CLASS_NAMES order. Brow lift and slant:
# lift > 0 raises both brows, slant > 0 raises their inner ends. Eye opening:
# the vertical radius as a fraction of the horizontal one. Mouth: "curve" > 0
# lifts the corners (smile), "open" > 0 draws a filled opening of that height.
_BROW_LIFT = np.array([-0.10, -0.08, 0.12, 0.0, 0.02, 0.20, 0.0])
_BROW_SLANT = np.array([-0.65, -0.25, 0.45, 0.0, 0.60, 0.0, 0.0])
_EYE_OPENING = np.array([0.28, 0.30, 1.00, 0.60, 0.60, 1.00, 0.60])
_MOUTH_WIDTH = np.array([0.24, 0.34, 0.46, 0.44, 0.36, 0.15, 0.36])
_MOUTH_CURVE = np.array([-0.08, 0.0, 0.0, 0.20, -0.16, 0.0, 0.0])
_MOUTH_TILT = np.array([0.0, 0.40, 0.0, 0.0, 0.0, 0.0, 0.0])
_MOUTH_OPEN = np.array([0.0, 0.0, 0.09, 0.0, 0.0, 0.20, 0.0])

# Faces are drawn this many at a time to bound the float temporaries.
_CHUNK = 256

DEFAULT_NUM_PER_CLASS = {"Training": 300, "PublicTest": 60, "PrivateTest": 60}


def synthetic_faces(n: int, seed: int | np.random.SeedSequence = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``n`` faces, classes balanced (counts differ by at most one), order shuffled.

    Returns:
        ``(images, labels)``: uint8 (n, 48, 48, 1) and int32 (n,); the same
        seed gives the same arrays.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int32)
    images = np.concatenate(
        [_draw(labels[start : start + _CHUNK], rng) for start in range(0, n, _CHUNK)]
        or [np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)]
    )
    return images[..., None], labels


def write_synthetic_fer2013(
    path: str | os.PathLike,
    num_per_class_per_split: int | Mapping[str, int] = DEFAULT_NUM_PER_CLASS,
    seed: int = 0,
) -> str:
    """Writes a synthetic data set in the exact FER2013 CSV format.

    Args:
        path: the file to write; gzip if it ends in ``.gz``, the gzip header
            without name and time, so the same seed gives the same bytes.
        num_per_class_per_split: images per class in each split, as one int for
            all three splits or a mapping ``{"Training": 300, ...}`` (a split
            left out, or 0, is absent from the file).
        seed: the data set is a function of this seed.

    Returns:
        ``path``, as a string.
    """
    counts = _counts_per_split(num_per_class_per_split)
    split_seeds = np.random.SeedSequence(seed).spawn(len(USAGES))
    splits = [synthetic_faces(counts[usage] * len(CLASS_NAMES), seed=split_seed) for usage, split_seed in zip(USAGES, split_seeds)]
    return write_fer2013_csv(
        path,
        np.concatenate([images for images, _ in splits]),
        np.concatenate([labels for _, labels in splits]),
        [usage for usage, (_, labels) in zip(USAGES, splits) for _ in labels],
    )


def _counts_per_split(num: int | Mapping[str, int]) -> dict[str, int]:
    counts = dict.fromkeys(USAGES, num) if isinstance(num, int) else {usage: num.get(usage, 0) for usage in USAGES}
    unknown = set() if isinstance(num, int) else set(num) - set(USAGES)
    if unknown or any(count < 0 for count in counts.values()):
        raise ValueError(f"num_per_class_per_split: expected counts >= 0 for {', '.join(USAGES)}, got {num!r}")
    return counts


def _draw(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int labels (n,) -> uint8 faces (n, 48, 48)."""
    n = len(labels)

    def jitter(values: np.ndarray, spread: float) -> np.ndarray:
        """Per-face values around the class values, shaped (n, 1, 1) to broadcast over pixels."""
        return (values[labels] + rng.normal(0.0, spread, n))[:, None, None]

    def uniform(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, n)[:, None, None]

    # Pose: pixel grid -> face coordinates (inverse of scale, rotation, shift).
    pixel_y, pixel_x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    half_width = uniform(15.0, 20.0)
    aspect = uniform(1.15, 1.4)
    angle = uniform(-0.25, 0.25)
    dx = pixel_x - (IMAGE_SIZE - 1) / 2 - uniform(-3.5, 3.5)
    dy = pixel_y - (IMAGE_SIZE - 1) / 2 - uniform(-3.0, 4.0)
    x = (np.cos(angle) * dx + np.sin(angle) * dy) / half_width
    y = (-np.sin(angle) * dx + np.cos(angle) * dy) / half_width
    pixel = 1.0 / half_width  # one pixel in face units, for anti-aliased edges

    def inside(distance: np.ndarray) -> np.ndarray:
        """Soft 0..1 mask from a signed distance (negative inside), in face units."""
        return 1.0 / (1.0 + np.exp(np.clip(distance / pixel * 2.5, -30, 30)))

    face = inside(np.sqrt(x**2 + (y / aspect) ** 2) - 1.0)
    ink = np.zeros_like(x)  # how dark each pixel of the features is, 0..1

    # Eyes: ellipses at (+-0.38, -0.12) with a darker pupil.
    eye_rx = uniform(0.15, 0.19)
    eye_ry = eye_rx * np.clip(jitter(_EYE_OPENING, 0.06), 0.15, 1.2)
    eye_x = np.abs(x) - 0.38
    eye_y = y + 0.12
    eye = inside(np.sqrt((eye_x / eye_rx) ** 2 + (eye_y / eye_ry) ** 2) - 1.0)
    pupil = inside(np.sqrt(eye_x**2 + eye_y**2) - 0.6 * np.minimum(eye_rx, eye_ry))
    ink = np.maximum(ink, 0.55 * eye + 0.45 * pupil)

    # Brows: thick strokes above the eyes, lifted and slanted per class.
    brow_lift = jitter(_BROW_LIFT, 0.03)
    brow_slant = jitter(_BROW_SLANT, 0.08)
    brow_center_y = -0.42 - eye_ry * 0.6 - brow_lift
    brow_y = brow_center_y + brow_slant * (np.abs(x) - 0.38)
    brow = inside(np.abs(y - brow_y) - uniform(0.035, 0.06)) * inside(np.abs(eye_x) - 0.22)
    ink = np.maximum(ink, 0.9 * brow)

    # Mouth: a curved, possibly tilted stroke, or a filled opening.
    mouth_width = jitter(_MOUTH_WIDTH, 0.03)
    mouth_x = x / mouth_width
    tilt = jitter(_MOUTH_TILT, 0.03) * rng.choice([-1.0, 1.0], n)[:, None, None]
    mouth_center_y = 0.6 + uniform(-0.04, 0.06)
    mouth_line_y = mouth_center_y - jitter(_MOUTH_CURVE, 0.025) * mouth_x**2 + tilt * x
    within_width = inside(np.abs(mouth_x) - 1.0)
    stroke = inside(np.abs(y - mouth_line_y) - uniform(0.03, 0.05)) * within_width
    opening_height = np.maximum(jitter(_MOUTH_OPEN, 0.015), 0.0)
    opening = inside(np.sqrt(mouth_x**2 + ((y - mouth_center_y) / np.maximum(opening_height, 1e-3)) ** 2) - 1.0)
    opening = np.where(opening_height > 0.02, opening, 0.0)
    ink = np.maximum(ink, np.maximum(0.85 * stroke, 0.95 * opening))

    # Shading: skin and background levels, feature contrast, lighting, noise.
    skin = uniform(120.0, 210.0)
    background = uniform(20.0, 235.0)
    contrast = uniform(0.55, 0.9)
    nose = inside(np.abs(x) - 0.04) * inside(np.abs(y - 0.22) - 0.12)
    shaded = skin * (1.0 - contrast * ink) - 15.0 * nose
    image = face * shaded + (1.0 - face) * background
    light_angle = uniform(0.0, 2 * np.pi)
    image += uniform(0.0, 35.0) * (np.cos(light_angle) * (pixel_x - 23.5) + np.sin(light_angle) * (pixel_y - 23.5)) / 24.0
    image += rng.normal(0.0, 1.0, image.shape) * uniform(3.0, 12.0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)

