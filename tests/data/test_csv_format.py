"""Bad input: every broken file is an error naming file, line and problem, in every reader.

The dialects in circulation (quoting, icml_face_data.csv's header, BOM, CRLF,
trailing blank lines) read as the plain file does.
"""

import csv
import gzip
import io
import zlib

import numpy as np
import pytest
from fer_test_files import HEADER, pixel_field, write_csv

from keras_fer.data import FER2013FormatError, fer2013_dataset, read_fer2013, write_fer2013_csv


def read_numpy(path, **kwargs):
    return read_fer2013(path, usage=["Training", "PublicTest", "PrivateTest"], **kwargs)


def build_tf_dataset(path, **kwargs):
    # Only building the dataset, not iterating it: errors must come up front.
    return fer2013_dataset(path, usage=["Training", "PublicTest", "PrivateTest"], **kwargs)


READERS = pytest.mark.parametrize("read", [read_numpy, build_tf_dataset], ids=["numpy", "tf.data"])


def replace_line(lines, line_number, text):
    """Lines with 1-based ``line_number`` replaced."""
    return lines[: line_number - 1] + [text] + lines[line_number:]


def pixels_starting_with(*tokens: str) -> str:
    """A pixels field of 2304 tokens whose first ones are ``tokens``."""
    valid = pixel_field(0).split(" ")
    return " ".join([*tokens, *valid[len(tokens):]])


BAD_ROWS = {
    # name: (bad row text for line 4, expected problem)
    "too few pixels": (f"2,{pixel_field(0).rsplit(' ', 1)[0]},Training", "expected 2304 pixel values, found 2303"),
    "too many pixels": (f"2,{pixel_field(0)} 7,Training", "expected 2304 pixel values, found 2305"),
    "non-numeric pixel": (f"2,{pixels_starting_with('1', '2', '3', 'x4')},Training", "pixel 4 is 'x4', not an integer"),
    "negative pixel": (f"2,{pixels_starting_with('1', '-2')},Training", "pixel 2 is '-2', not an integer"),
    "pixel above 255": (f"2,{pixels_starting_with('1', '2', '3', '4', '256')},Training", "pixel 5 is 256, outside 0-255"),
    "leading zero": (f"2,{pixels_starting_with('1', '2', '007')},Training", "pixel 3 is '007', written with a leading zero"),
    "double space": (f"2,{pixels_starting_with('1', '')},Training", "pixel 2 is empty"),
    "label 7": (f"7,{pixel_field(0)},Training", "emotion 7 is outside 0-6"),
    "label -1": (f"-1,{pixel_field(0)},Training", "emotion -1 is outside 0-6"),
    "label not a number": (f"happy,{pixel_field(0)},Training", "emotion 'happy' is not an integer"),
    "unknown Usage": (f"2,{pixel_field(0)},Validation", "unknown Usage 'Validation': expected one of Training, PublicTest, PrivateTest"),
    "missing field": (f"2,{pixel_field(0)}", "expected 3 comma-separated fields, found 2"),
    "blank line": ("", "empty line"),
}


def assert_names_file_line_and_problem(error, path, line, problem):
    assert (error.path, error.line) == (str(path), line)
    assert str(error) == f"{path}:{line}: {error.what}"
    assert problem in error.what


BAD_QUOTING = {
    # name: (bad row text for line 4, expected problem)
    "unterminated quote": (f'2,"{pixel_field(0)},Training', "broken quoting"),
    "text after the closing quote": (f'2,"{pixel_field(0)}" ,Training', "broken quoting"),
    "quote after a space": (f'2, "{pixel_field(0)}",Training', "field 2 has a quote after a space"),
}
BAD_ROWS.update(BAD_QUOTING)


@READERS
@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_bad_row_names_file_line_and_problem(read, case, tmp_path, valid_lines):
    text, problem = BAD_ROWS[case]
    path = write_csv(tmp_path / "fer2013.csv", replace_line(valid_lines, 4, text))
    with pytest.raises(FER2013FormatError) as caught:
        read(path)
    assert_names_file_line_and_problem(caught.value, path, 4, problem)


BAD_FILES = {
    # name: (file content as lines, expected line, expected problem)
    "missing Usage column": (["emotion,pixels", f"0,{pixel_field(0)}"], 1, "header lacks column(s) 'Usage'"),
    "extra column": (["emotion,pixels,Usage,source", f"0,{pixel_field(0)},Training,a"], 1, "expected exactly the columns 'emotion,pixels,Usage' (in any order), found 'emotion,pixels,Usage,source'"),
    "missing header": ([f"0,{pixel_field(0)},Training"], 1, "missing header: expected 'emotion,pixels,Usage'"),
    "empty file": ([], 1, "empty file"),
    "header only": ([HEADER], 2, "no valid data rows"),
}


@READERS
@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_names_file_line_and_problem(read, case, tmp_path):
    lines, line, problem = BAD_FILES[case]
    path = write_csv(tmp_path / "fer2013.csv", lines)
    with pytest.raises(FER2013FormatError) as caught:
        read(path)
    assert_names_file_line_and_problem(caught.value, path, line, problem)


@READERS
def test_truncated_gzip_names_the_line_where_it_ends(read, tmp_path, valid_lines):
    whole = gzip.compress(("\n".join(valid_lines) + "\n").encode(), mtime=0)
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    # The text that survives ends inside a row: that row's line is reported.
    surviving_text = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
    first_incomplete_line = surviving_text.count(b"\n") + 1
    assert first_incomplete_line > 2
    with pytest.raises(FER2013FormatError) as caught:
        read(path)
    assert_names_file_line_and_problem(caught.value, path, first_incomplete_line, "gzip data is truncated or corrupt")


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("final_newline", [True, False], ids=["final newline", "no final newline"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_line_endings_and_compression_do_not_change_the_data(tmp_path, valid_lines, newline, final_newline, suffix):
    path = write_csv(tmp_path / f"fer2013{suffix}", valid_lines, newline, final_newline)
    images, labels = read_numpy(path)
    expected = np.array([[int(v) for v in line.split(",")[1].split()] for line in valid_lines[1:]])
    np.testing.assert_array_equal(images.reshape(len(expected), -1), expected)
    np.testing.assert_array_equal(labels, [int(line.split(",")[0]) for line in valid_lines[1:]])
    tf_images, tf_labels = next(iter(build_tf_dataset(path, batch_size=len(expected))))
    np.testing.assert_array_equal(tf_images.numpy(), images)
    np.testing.assert_array_equal(tf_labels.numpy(), labels)


def test_columns_may_come_in_any_order(tmp_path, valid_lines):
    reordered = ["Usage,emotion,pixels"] + [",".join(line.split(",")[i] for i in (2, 0, 1)) for line in valid_lines[1:]]
    in_order = read_numpy(write_csv(tmp_path / "in_order.csv", valid_lines))
    path = write_csv(tmp_path / "reordered.csv", reordered)
    for images, labels in (read_numpy(path), next(iter(build_tf_dataset(path, batch_size=10)))):
        np.testing.assert_array_equal(images, in_order[0])
        np.testing.assert_array_equal(labels, in_order[1])


@READERS
def test_skipping_bad_rows_reports_how_many_and_which_lines(read, tmp_path, valid_lines, caplog):
    lines = replace_line(replace_line(valid_lines, 3, "9,1 2,Training"), 6, f"1,{pixel_field(1)},Dev")
    path = write_csv(tmp_path / "fer2013.csv", lines)
    with caplog.at_level("WARNING", logger="keras_fer.data.row_index"):
        read(path, skip_bad_rows=True)
    assert f"{path}: skipped 2 bad rows on lines 3, 6" in caplog.text


def test_skipped_rows_are_left_out_by_both_readers(tmp_path, valid_lines):
    path = write_csv(tmp_path / "fer2013.csv", replace_line(valid_lines, 3, "9,1 2,Training"))
    images, labels = read_numpy(path, skip_bad_rows=True)
    np.testing.assert_array_equal(labels, [0, 2, 3, 4, 5])
    tf_images, tf_labels = next(iter(build_tf_dataset(path, skip_bad_rows=True, batch_size=10)))
    np.testing.assert_array_equal(tf_images.numpy(), images)
    np.testing.assert_array_equal(tf_labels.numpy(), labels)


@pytest.mark.parametrize("name", ["faces.csv", "faces.csv.gz"])
def test_written_file_reads_back_identically(tmp_path, name):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(9, 48, 48, 1), dtype=np.uint8)
    labels = rng.integers(0, 7, size=9).astype(np.int32)
    usages = ["Training"] * 4 + ["PublicTest"] * 3 + ["PrivateTest"] * 2
    path = write_fer2013_csv(tmp_path / name, images, labels, usages)
    for usage, rows in (("Training", slice(0, 4)), ("PublicTest", slice(4, 7)), ("PrivateTest", slice(7, 9))):
        read_images, read_labels = read_fer2013(path, usage=usage)
        np.testing.assert_array_equal(read_images, images[rows])
        np.testing.assert_array_equal(read_labels, labels[rows])


def test_writer_refuses_unknown_usages_and_mismatched_lengths(tmp_path):
    images = np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(ValueError, match="Validation"):
        write_fer2013_csv(tmp_path / "x.csv", images, [0, 1], ["Training", "Validation"])
    with pytest.raises(ValueError, match="got 2, 1, 2"):
        write_fer2013_csv(tmp_path / "x.csv", images, [0], ["Training", "Training"])


def split_plain(line: str) -> list[str]:
    return line.split(",")


def csv_writer_text(rows: list[list[str]], **writer_options) -> str:
    out = io.StringIO()
    csv.writer(out, **writer_options).writerows(rows)
    return out.getvalue()


# name: function of the plain lines -> the same data as file bytes in another dialect.
DIALECTS = {
    "icml_face_data.csv": lambda lines: (
        "emotion, Usage, pixels\n" + "".join(f"{e},{u},{p}\n" for e, p, u in map(split_plain, lines[1:]))
    ).encode(),
    "pixels quoted": lambda lines: (
        lines[0] + "\n" + "".join(f'{e},"{p}",{u}\n' for e, p, u in map(split_plain, lines[1:]))
    ).encode(),
    "every field quoted, CRLF, BOM (a spreadsheet export)": lambda lines: csv_writer_text(
        [split_plain(line) for line in lines], quoting=csv.QUOTE_ALL, lineterminator="\r\n"
    ).encode("utf-8-sig"),
    "spaces around fields": lambda lines: "".join(
        " , ".join(f" {field}" for field in split_plain(line)) + "\n" for line in lines
    ).encode(),
    "trailing blank lines, CRLF": lambda lines: ("\r\n".join(lines) + "\r\n\r\n  \r\n\r\n").encode(),
}


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
@pytest.mark.parametrize("dialect", DIALECTS, ids=list(DIALECTS))
def test_dialects_read_as_the_plain_file_in_both_readers(tmp_path, valid_lines, dialect, suffix):
    plain_images, plain_labels = read_numpy(write_csv(tmp_path / "plain.csv", valid_lines))
    data = DIALECTS[dialect](valid_lines)
    path = tmp_path / f"dialect{suffix}"
    path.write_bytes(gzip.compress(data, mtime=0) if suffix == ".csv.gz" else data)
    images, labels = read_numpy(path)
    np.testing.assert_array_equal(images, plain_images)
    np.testing.assert_array_equal(labels, plain_labels)
    tf_images, tf_labels = next(iter(build_tf_dataset(path, batch_size=len(plain_labels) + 1)))
    np.testing.assert_array_equal(tf_images.numpy(), plain_images)
    np.testing.assert_array_equal(tf_labels.numpy(), plain_labels)


@READERS
def test_blank_lines_between_rows_are_errors_even_when_others_end_the_file(read, tmp_path, valid_lines):
    path = write_csv(tmp_path / "fer2013.csv", [*valid_lines[:3], "", *valid_lines[3:], "", ""])
    with pytest.raises(FER2013FormatError) as caught:
        read(path)
    assert_names_file_line_and_problem(caught.value, path, 4, "empty line (blank lines may only end the file)")
