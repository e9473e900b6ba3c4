"""tools/gpu_run.py: the folder carried to a GPU machine without TensorFlow, and a JAX run from it."""

import json
import lzma
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_recipe import write_votes_for

from keras_fer.data import read_fer2013, write_synthetic_fer2013

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU_RUN = REPO_ROOT / "tools" / "gpu_run.py"
# The packs here are installed by this machine's Python, not the device's.
PYTHON_VERSION = ".".join(platform.python_version_tuple()[:2])


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A pack of a small synthetic FER2013 file and its FERPlus votes, with wheels for this machine's Python."""
    root = tmp_path_factory.mktemp("gpu")
    csv = write_synthetic_fer2013(root / "faces.csv", {"Training": 12, "PublicTest": 4, "PrivateTest": 3}, seed=5)
    votes = write_votes_for(csv, root / "fer2013new.csv")
    subprocess.run(
        [sys.executable, str(GPU_RUN), "pack", "--data", csv, "--ferplus", str(votes), "--out", str(root / "pack"),
         "--python-version", PYTHON_VERSION],
        check=True, capture_output=True, text=True,
    )
    return root, csv


def test_pack_holds_arrays_wheels_configs_and_scripts(packed):
    root, _ = packed
    pack = root / "pack"
    wheels = sorted(path.name.split("-")[0] for path in (pack / "wheels").glob("*.whl"))
    assert wheels == ["keras", "keras_fer", "namex", "optree"]
    assert {"train.py", "evaluate.py", "gpu_run.py", "configs", "fer2013_arrays.npy.xz"} <= {p.name for p in pack.iterdir()}
    assert (pack / "configs" / "paper.yaml").read_text() == (REPO_ROOT / "configs" / "paper.yaml").read_text()
    # Training and PublicTest only, as the device runs them: 12 and 4 faces per class.
    assert json.loads((pack / "pack.json").read_text())["rows"] == 7 * (12 + 4)
    # No shipped preset unless asked for: each is 6.2 MiB of the device's carry.
    assert wheel_presets(pack) == []
    with lzma.open(pack / "fer2013new.csv.xz") as packed_votes:
        assert packed_votes.read() == (root / "fer2013new.csv").read_bytes()


def wheel_files(pack):
    (wheel,) = (pack / "wheels").glob("keras_fer-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def wheel_presets(pack):
    return [name for name in wheel_files(pack) if name.startswith("keras_fer/presets/")]


def test_pack_carries_the_presets_asked_for_and_no_other(tmp_path):
    subprocess.run(
        [sys.executable, str(GPU_RUN), "pack", "--presets", "fer2013", "--out", str(tmp_path / "pack"),
         "--python-version", PYTHON_VERSION],
        check=True, capture_output=True, text=True,
    )
    assert wheel_presets(tmp_path / "pack") == ["keras_fer/presets/fer2013.npz"]
    # The wheel's code is the whole package all the same.
    assert "keras_fer/pretrained.py" in wheel_files(tmp_path / "pack")


def test_packed_arrays_rebuild_the_same_faces(packed, tmp_path):
    root, csv = packed
    rebuilt = tmp_path / "rebuilt.csv"
    subprocess.run(
        [sys.executable, str(GPU_RUN), "unpack-csv", "--pack", str(root / "pack"), "--csv", str(rebuilt)],
        check=True, capture_output=True,
    )
    for usage in ("Training", "PublicTest"):
        for original, copy in zip(read_fer2013(csv, usage=usage), read_fer2013(rebuilt, usage=usage)):
            np.testing.assert_array_equal(original, copy)
    with pytest.raises(ValueError, match="PrivateTest"):
        read_fer2013(rebuilt, usage="PrivateTest")


def test_run_installs_the_wheels_and_trains_on_ferplus_votes_on_jax_without_tensorflow(packed, tmp_path):
    root, _ = packed
    run_dir = tmp_path / "run"
    # The GPU machines have no TensorFlow: make it unimportable, as there.
    no_tensorflow = tmp_path / "no_tensorflow" / "tensorflow"
    no_tensorflow.mkdir(parents=True)
    (no_tensorflow / "__init__.py").write_text("raise ImportError('no TensorFlow on this machine')\n")
    env = dict(os.environ, PYTHONPATH=str(no_tensorflow.parent))
    result = subprocess.run(
        [sys.executable, str(root / "pack" / "gpu_run.py"), "run", "--pack", str(root / "pack"),
         "--config", "quickstart.yaml", "--minutes", "5", "--output-dir", str(run_dir),
         "--site", str(tmp_path / "site"),
         # The runner is under test here, not the network (test_backends trains the masked one
         # on JAX with XLA): a small plain ResNet34 keeps the two XLA compiles short.
         "--set", "model.width=4", "--set", "model.input_size=32", "--set", "model.use_masks=false",
         "--set", "training.epochs=2", "--set", "training.batch_size=16",
         # The FERPlus modes read the packed votes: run points data.ferplus_path at them.
         "--set", "data.labels=ferplus8", "--set", "data.targets=votes"],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["backend"] == "jax"
    assert metrics["epochs_run"] == 2
    assert json.loads((run_dir / "class_names.json").read_text())[-1] == "Contempt"
    # Keras came from the packed wheels, not from this machine's site-packages.
    assert (tmp_path / "site" / "keras").is_dir()
    assert "backend jax" in result.stdout
