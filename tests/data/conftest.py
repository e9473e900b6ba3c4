"""Fixtures of the data tests: small synthetic CSVs (always) and the real FER2013 files (when present)."""

from pathlib import Path

import numpy as np
import pytest
from fer_test_files import HEADER, REAL_CSV, REAL_FERPLUS, pixel_field

from keras_fer.data import read_fer2013, write_synthetic_fer2013

@pytest.fixture
def valid_lines() -> list[str]:
    """Header + 6 rows (line 2-7): classes 0-5, Training x4, PublicTest, PrivateTest."""
    usages = ["Training"] * 4 + ["PublicTest", "PrivateTest"]
    return [HEADER] + [f"{label},{pixel_field(label)},{usage}" for label, usage in enumerate(usages)]


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory) -> Path:
    """A synthetic FER2013 CSV: 4 / 2 / 2 faces per class in Training / PublicTest / PrivateTest."""
    path = tmp_path_factory.mktemp("synthetic") / "fer2013.csv"
    write_synthetic_fer2013(path, {"Training": 4, "PublicTest": 2, "PrivateTest": 2}, seed=1)
    return path


@pytest.fixture(scope="session")
def real_csv() -> Path:
    if not REAL_CSV.exists():
        pytest.skip(f"real FER2013 file not present at {REAL_CSV}")
    return REAL_CSV


@pytest.fixture(scope="session")
def real_ferplus() -> Path:
    if not REAL_FERPLUS.exists():
        pytest.skip(f"FERPlus vote file not present at {REAL_FERPLUS}")
    return REAL_FERPLUS


@pytest.fixture(scope="session")
def real_training_and_public(real_csv) -> tuple[np.ndarray, np.ndarray]:
    """All rows of the real file through the NumPy reader, read once per session.

    The read also validates the file and leaves its row index cached, so other
    readers of the same file in this session skip the validating pass.
    """
    return read_fer2013(real_csv, usage=["Training", "PublicTest"])
