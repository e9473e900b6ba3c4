"""The validating pass is cached per file version; importing the package stays light."""

import os
import subprocess
import sys

import pytest
from fer_test_files import write_csv

from keras_fer.data import FER2013FormatError, fer2013_dataset, read_fer2013
from keras_fer.data.row_index import index_fer2013


def test_index_is_reused_until_the_file_changes(tmp_path, valid_lines):
    path = write_csv(tmp_path / "fer2013.csv", valid_lines)
    first = index_fer2013(path)
    assert index_fer2013(path) is first
    assert list(first.lines) == [2, 3, 4, 5, 6, 7]
    # Same length, new content and time: the edited file is validated again.
    broken = valid_lines[:3] + [valid_lines[3].replace(",Training", ",Trainin_")] + valid_lines[4:]
    write_csv(path, broken)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1_000_000))
    with pytest.raises(FER2013FormatError, match=r":4: unknown Usage 'Trainin_'"):
        fer2013_dataset(path)


def test_numpy_read_leaves_the_index_for_the_dataset(tmp_path, valid_lines):
    path = write_csv(tmp_path / "fer2013.csv", valid_lines)
    read_fer2013(path)
    index = index_fer2013(path)
    fer2013_dataset(path)
    assert index_fer2013(path) is index


def test_importing_the_package_on_jax_imports_neither_tensorflow_nor_tfds():
    # `import keras_fer` registers the custom layers, so it imports Keras, and Keras imports its
    # backend; on JAX, the data readers must still come without TensorFlow.
    code = "import sys, keras_fer.data; print('tensorflow' in sys.modules, 'tensorflow_datasets' in sys.modules)"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.split() == ["False", "False"]
