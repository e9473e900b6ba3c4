"""Helpers of the data tests that write FER2013-format files, and where the real files are."""

import gzip
from pathlib import Path

import numpy as np

SHARED_FER2013 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fer2013"
REAL_CSV = SHARED_FER2013 / "fer2013_train_public.csv.gz"
REAL_FERPLUS = SHARED_FER2013 / "fer2013new.csv"
HEADER = "emotion,pixels,Usage"


def pixel_field(seed: int) -> str:
    """A valid pixels field: 2304 values 0-255."""
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 48 * 48)))


def write_csv(path: Path, lines: list[str], newline: str = "\n", final_newline: bool = True) -> Path:
    """Writes text lines as a plain CSV, or gzip if ``path`` ends in .gz."""
    data = (newline.join(lines) + (newline if lines and final_newline else "")).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
