"""TensorFlow's start-up lines held to TF_CPP_MIN_LOG_LEVEL: the filter's rule, the captured descriptor, the scripts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_fer.tensorflow_logs import filtered_start_up_logs, kept_lines

REPO = Path(__file__).resolve().parents[1]
NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
INFO = "I0000 00:00:1796601553.577184   27100 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
CONTINUATION = "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow\n"
WARNING = "W0000 00:00:1796601553.600000   27100 port.cc:10] a warning\n"
ERROR = "E0000 00:00:1796601752.867734   27693 cuda_platform.cc:52] failed call to cuInit\n"
FATAL = "F0000 00:00:1796601752.900000   27693 main.cc:1] fatal\n"
PLAIN = "Traceback (most recent call last):\n"
CAPTURED = [NOTICE, INFO, CONTINUATION, WARNING, ERROR, PLAIN, FATAL]


@pytest.mark.parametrize("level, kept", [
    (0, CAPTURED),
    (1, [WARNING, ERROR, PLAIN, FATAL]),
    (2, [ERROR, PLAIN, FATAL]),
    (3, [PLAIN, FATAL]),
])
def test_each_level_keeps_the_severities_tensorflow_documents_and_every_line_that_is_not_a_log_line(level, kept):
    assert kept_lines(CAPTURED, level) == kept


def test_a_line_like_the_continuation_is_kept_unless_it_follows_a_dropped_log_line():
    assert kept_lines([ERROR, CONTINUATION], 2) == [ERROR, CONTINUATION]
    assert kept_lines([PLAIN, CONTINUATION], 2) == [PLAIN, CONTINUATION]


def test_the_descriptor_is_captured_and_written_back_filtered_even_when_the_block_raises(monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delitem(sys.modules, "tensorflow")  # as before TensorFlow's first import
    with pytest.raises(ImportError, match="broken"):
        with filtered_start_up_logs():
            os.write(2, "".join([NOTICE, INFO, CONTINUATION, ERROR, PLAIN]).encode())
            raise ImportError("broken")
    assert capfd.readouterr().err == ERROR + PLAIN


def test_nothing_is_captured_at_level_0_or_once_tensorflow_is_imported(monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_start_up_logs():  # the test process has imported TensorFlow
        os.write(2, INFO.encode())
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.delitem(sys.modules, "tensorflow")
    with filtered_start_up_logs():
        os.write(2, INFO.encode())
    assert capfd.readouterr().err == INFO + INFO


@pytest.mark.parametrize("script", ["predict.py", "export.py", "evaluate.py", "train.py"])
def test_a_scripts_help_comes_without_tensorflows_start_up_lines(script):
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, script, "--help"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr
    assert not [line for line in done.stderr.splitlines() if line[:1] in "IW" and line[1:5].isdigit()], done.stderr
    assert "absl::InitializeLog" not in done.stderr, done.stderr
