"""Shared test fixtures: the real FER2013 folder when present, and the paper-size model."""

import os
from pathlib import Path

# Quiet TensorFlow's C++ start-up logs; must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FER2013 = REPO_ROOT.parent / "shared" / "data" / "fer2013"


@pytest.fixture(scope="session")
def paper_model():
    """The paper configuration (224, width 64, 137.9 M parameters), built once per session."""
    from keras_fer.models import build_model

    return build_model()
