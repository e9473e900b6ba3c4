"""``python -m keras_fer.data``: counts by split and class, as a table or JSON, and errors."""

import csv
import json
import subprocess
import sys
from collections import Counter

from fer_test_files import HEADER, pixel_field, write_csv

from keras_fer.data.__main__ import main


def test_json_counts_match_the_file(small_csv, capsys):
    assert main([str(small_csv), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    with open(small_csv, newline="") as f:
        expected = Counter((usage, int(emotion)) for emotion, _, usage in list(csv.reader(f))[1:])
    assert report["rows"] == sum(expected.values())
    for usage, split in report["splits"].items():
        assert list(split["classes"].values()) == [expected[usage, c] for c in range(7)]
    assert set(report["splits"]) == {"Training", "PublicTest", "PrivateTest"}
    # The rate is the row count over the reported time (never a division by a time rounded to 0).
    assert report["seconds"] > 0
    assert abs(report["rows_per_second"] - report["rows"] / report["seconds"]) <= 0.01 * report["rows_per_second"]


def test_table_reports_splits_time_and_rate(small_csv, capsys):
    assert main([str(small_csv), "--usage", "PublicTest"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{small_csv}: 56 valid rows, labels fer2013"
    assert out[1].split() == ["split", "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral", "kept", "dropped"]
    assert out[2].split() == ["PublicTest"] + ["2"] * 7 + ["14", "0"]
    assert out[3].endswith("rows/s") and len(out) == 4


def test_bad_file_exits_1_with_file_and_line(tmp_path, capsys):
    path = write_csv(tmp_path / "fer2013.csv", [HEADER, f"0,{pixel_field(0)},Training", f"8,{pixel_field(1)},Training"])
    assert main([str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {path}:3: emotion 8 is outside 0-6"


def test_skip_bad_rows_lists_them(tmp_path, capsys):
    path = write_csv(tmp_path / "fer2013.csv", [HEADER, "x", f"0,{pixel_field(0)},Training", "y"])
    assert main([str(path), "--skip-bad-rows", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_lines"] == [2, 4]


def test_runs_as_a_module(small_csv):
    result = subprocess.run(
        [sys.executable, "-m", "keras_fer.data", str(small_csv), "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout)["splits"]["Training"]["rows"] == 28
