"""FERPlus majority labels: the vote rule, alignment with the CSV, and the real vote file."""

import csv
from collections import Counter

import numpy as np
import pytest
from fer_test_files import HEADER, pixel_field, write_csv

from keras_fer.data import FER2013FormatError, count_fer2013, fer2013_dataset, read_fer2013
from keras_fer.data.ferplus import FERPLUS_COLUMNS, majority_labels, vote_shares

VOTE_NAMES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
FER2013_NAME_OF_VOTE = {
    "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happiness": "Happy",
    "sadness": "Sad", "surprise": "Surprise", "neutral": "Neutral", "contempt": "Contempt",
}  # fmt: skip


def votes(**counts):
    return [counts.get(name, 0) for name in VOTE_NAMES]


# (votes, 7-class label, 8-class label); -1 = dropped.
VOTE_CASES = {
    "unanimous happiness": (votes(happiness=10), 3, 3),
    "anger": (votes(anger=6, disgust=4), 0, 0),
    "disgust": (votes(disgust=5, anger=3, fear=2), 1, 1),
    "fear": (votes(fear=4, surprise=3, neutral=3), 2, 2),
    "sadness": (votes(sadness=7, neutral=3), 4, 4),
    "surprise": (votes(surprise=9, fear=1), 5, 5),
    "neutral beats happiness": (votes(neutral=6, happiness=4), 6, 6),
    "tie": (votes(neutral=5, sadness=5), -1, -1),
    "three-way tie": (votes(neutral=3, sadness=3, anger=3, NF=1), -1, -1),
    "unknown wins": (votes(unknown=5, neutral=3, happiness=2), -1, -1),
    "not a face": (votes(NF=10), -1, -1),
    "contempt wins": (votes(contempt=6, neutral=4), -1, 7),
    "no votes": (votes(), -1, -1),
}


def test_majority_vote_rule():
    table = np.array([case[0] for case in VOTE_CASES.values()])
    assert majority_labels(table).tolist() == [case[1] for case in VOTE_CASES.values()]
    assert majority_labels(table, with_contempt=True).tolist() == [case[2] for case in VOTE_CASES.values()]


def write_ferplus(path, usages_and_votes, header=FERPLUS_COLUMNS):
    lines = [",".join(header)] + [f"{usage},fer{i:07d}.png,{','.join(map(str, v))}" for i, (usage, v) in enumerate(usages_and_votes)]
    return write_csv(path, lines)


@pytest.fixture
def csv_with_votes(tmp_path):
    """A 5-row CSV (FER2013 labels 0..4) and FERPlus votes for it plus one PrivateTest row the CSV lacks."""
    usages = ["Training", "Training", "Training", "PublicTest", "PublicTest"]
    csv_path = write_csv(tmp_path / "fer2013.csv", [HEADER] + [f"{i},{pixel_field(i)},{u}" for i, u in enumerate(usages)])
    table = [
        ("Training", votes(happiness=8, neutral=2)),
        ("Training", votes(neutral=5, sadness=5)),
        ("Training", votes(contempt=7, anger=3)),
        ("PublicTest", votes(NF=10)),
        ("PublicTest", votes(surprise=6, fear=4)),
        ("PrivateTest", votes(anger=10)),
    ]
    return csv_path, write_ferplus(tmp_path / "fer2013new.csv", table)


@pytest.mark.parametrize(
    "labels, usage, expected_rows, expected_labels",
    [
        ("ferplus", "Training", [0], [3]),
        ("ferplus8", "Training", [0, 2], [3, 7]),
        ("ferplus", "PublicTest", [4], [5]),
        ("ferplus8", ["Training", "PublicTest"], [0, 2, 4], [3, 7, 5]),
    ],
)
def test_both_readers_apply_ferplus_labels_and_drop_rows(csv_with_votes, labels, usage, expected_rows, expected_labels):
    csv_path, ferplus_path = csv_with_votes
    all_images, _ = read_fer2013(csv_path, usage=["Training", "PublicTest"])
    images, targets = read_fer2013(csv_path, usage=usage, labels=labels, ferplus_path=ferplus_path)
    assert targets.tolist() == expected_labels
    np.testing.assert_array_equal(images, all_images[expected_rows])
    tf_images, tf_targets = next(iter(fer2013_dataset(csv_path, usage, batch_size=9, labels=labels, ferplus_path=ferplus_path)))
    np.testing.assert_array_equal(tf_images.numpy(), images)
    np.testing.assert_array_equal(tf_targets.numpy(), targets)


def test_vote_shares_count_only_the_classes_of_the_mode():
    table = np.array([votes(neutral=6, sadness=3, unknown=1), votes(contempt=6, neutral=2, NF=2), votes(NF=10)])
    np.testing.assert_allclose(vote_shares(table), [[0, 0, 0, 0, 1 / 3, 0, 2 / 3], [0, 0, 0, 0, 0, 0, 1], [0] * 7])
    np.testing.assert_allclose(vote_shares(table, with_contempt=True)[1], [0, 0, 0, 0, 0, 0, 0.25, 0.75])


@pytest.mark.parametrize("labels", ["ferplus", "ferplus8"])
def test_both_readers_give_the_same_vote_targets_for_the_rows_the_labels_keep(csv_with_votes, labels):
    csv_path, ferplus_path = csv_with_votes
    usage = ["Training", "PublicTest"]
    images, labels_kept = read_fer2013(csv_path, usage=usage, labels=labels, ferplus_path=ferplus_path)
    vote_images, shares = read_fer2013(csv_path, usage=usage, labels=labels, ferplus_path=ferplus_path, targets="votes")
    np.testing.assert_array_equal(vote_images, images)
    assert shares.dtype == np.float32 and shares.shape == (len(labels_kept), 8 if labels == "ferplus8" else 7)
    assert shares.argmax(axis=1).tolist() == labels_kept.tolist()
    np.testing.assert_allclose(shares[0, [3, 6]], [0.8, 0.2])  # happiness 8, neutral 2
    tf_images, tf_shares = next(iter(fer2013_dataset(csv_path, usage, batch_size=9, labels=labels,
                                                     ferplus_path=ferplus_path, targets="votes")))
    np.testing.assert_array_equal(tf_images.numpy(), images)
    np.testing.assert_allclose(tf_shares.numpy(), shares)


def test_vote_targets_need_a_ferplus_mode(csv_with_votes):
    csv_path, ferplus_path = csv_with_votes
    with pytest.raises(ValueError, match="targets='votes' needs a FERPlus label mode"):
        read_fer2013(csv_path, ferplus_path=ferplus_path, targets="votes")
    with pytest.raises(ValueError, match="targets must be one of labels, votes, got 'soft'"):
        fer2013_dataset(csv_path, labels="ferplus", ferplus_path=ferplus_path, targets="soft")


def test_real_vote_targets_agree_with_the_majority_labels(real_csv, real_ferplus, real_training_and_public):
    _, labels_kept = read_fer2013(real_csv, usage="PublicTest", labels="ferplus8", ferplus_path=real_ferplus)
    _, shares = read_fer2013(real_csv, usage="PublicTest", labels="ferplus8", ferplus_path=real_ferplus,
                             targets="votes")
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-6)
    assert (shares.argmax(axis=1) == labels_kept).all()
    assert 0.3 < (shares.max(axis=1) < 1).mean() < 0.9  # many faces are not unanimous: the point of the votes


def test_counts_report_dropped_rows(csv_with_votes):
    counts = count_fer2013(*csv_with_votes)
    assert counts["labels"] == "ferplus"
    assert counts["splits"]["Training"] == {
        "rows": 3, "kept": 1, "dropped": 2,
        "classes": {"Angry": 0, "Disgust": 0, "Fear": 0, "Happy": 1, "Sad": 0, "Surprise": 0, "Neutral": 0},
    }  # fmt: skip


def test_misaligned_usage_names_both_files_and_lines(tmp_path, csv_with_votes):
    csv_path, _ = csv_with_votes
    shifted = write_ferplus(tmp_path / "shifted.csv", [("Training", votes(NF=1))] * 3 + [("Training", votes(NF=1))] * 3)
    with pytest.raises(FER2013FormatError) as caught:
        read_fer2013(csv_path, labels="ferplus", ferplus_path=shifted)
    assert (caught.value.path, caught.value.line) == (str(shifted), 5)
    assert f"Usage Training does not match PublicTest on {csv_path}:5" in str(caught.value)
    assert str(caught.value).startswith(f"{shifted}:5: ")


def test_a_vote_file_for_a_larger_csv_is_refused_with_both_counts(tmp_path, csv_with_votes):
    # Rows 1-2 of the CSV are Training and align with the vote file's first rows, but the vote file
    # has 3 Training rows: it describes another file, whose labels would be silently wrong here.
    _, ferplus_path = csv_with_votes
    two_rows = write_csv(tmp_path / "two_rows.csv", [HEADER] + [f"{i},{pixel_field(i)},Training" for i in range(2)])
    for read in (read_fer2013, fer2013_dataset, count_fer2013):
        with pytest.raises(FER2013FormatError) as caught:
            read(two_rows, labels="ferplus", ferplus_path=ferplus_path)
        assert (caught.value.path, caught.value.line) == (str(ferplus_path), 2)
        assert f"the FERPlus file has 3 Training rows and {two_rows} has 2: a FERPlus file labels a whole" in str(caught.value)


def test_the_cli_refuses_a_vote_file_that_does_not_belong(tmp_path, csv_with_votes, capsys):
    from keras_fer.data.__main__ import main

    _, ferplus_path = csv_with_votes
    one_row = write_csv(tmp_path / "one_row.csv", [HEADER, f"3,{pixel_field(0)},Training"])
    assert main([str(one_row), "--ferplus", str(ferplus_path)]) == 1
    assert f"has 3 Training rows and {one_row} has 1" in capsys.readouterr().err


def test_vote_file_shorter_than_the_csv(tmp_path, csv_with_votes):
    csv_path, _ = csv_with_votes
    short = write_ferplus(tmp_path / "short.csv", [("Training", votes(anger=1))] * 3)
    with pytest.raises(FER2013FormatError) as caught:
        fer2013_dataset(csv_path, labels="ferplus", ferplus_path=short)
    assert (caught.value.path, caught.value.line) == (str(short), 5)
    assert f"ends after 3 rows, but {csv_path}:5 is a data row" in str(caught.value)


@pytest.mark.parametrize(
    "lines, line, problem",
    [
        ([], 1, "empty file"),
        (["Usage,Image name,neutral"], 1, "not a FERPlus header"),
        ([",".join(FERPLUS_COLUMNS), "Training,a.png,1,2,3"], 2, "expected 12 fields, found 5"),
        ([",".join(FERPLUS_COLUMNS), "Training,a.png," + ",".join(["1"] * 10), "Train,b.png," + ",".join(["1"] * 10)], 3, "unknown Usage 'Train'"),
        ([",".join(FERPLUS_COLUMNS), "Training,a.png,1,2,x,0,0,0,0,0,0,0"], 2, "vote count surprise='x' is not a non-negative integer"),
    ],
)
def test_bad_vote_file_names_file_line_and_problem(tmp_path, csv_with_votes, lines, line, problem):
    csv_path, _ = csv_with_votes
    bad = write_csv(tmp_path / "bad.csv", lines)
    with pytest.raises(FER2013FormatError) as caught:
        read_fer2013(csv_path, labels="ferplus", ferplus_path=bad)
    assert (caught.value.path, caught.value.line) == (str(bad), line)
    assert problem in caught.value.what


@pytest.mark.parametrize("labels", ["ferplus", "ferplus8"])
def test_real_ferplus_counts_match_a_plain_python_vote(real_csv, real_ferplus, real_training_and_public, labels):
    num_csv_rows = len(real_training_and_public[1])
    with open(real_ferplus, newline="") as f:
        vote_rows = list(csv.DictReader(f))[:num_csv_rows]
    expected = Counter()
    for row in vote_rows:
        counts = {name: int(row[name]) for name in VOTE_NAMES}
        winners = [name for name, count in counts.items() if count == max(counts.values())]
        name = FER2013_NAME_OF_VOTE.get(winners[0]) if len(winners) == 1 else None
        if name is not None and (name != "Contempt" or labels == "ferplus8"):
            expected[row["Usage"], name] += 1

    report = count_fer2013(real_csv, real_ferplus, labels=labels)
    found = Counter({(usage, name): n for usage, split in report["splits"].items() for name, n in split["classes"].items() if n})
    assert found == expected
    for usage, split in report["splits"].items():
        assert split["kept"] + split["dropped"] == split["rows"]
        assert split["kept"] == sum(n for (u, _), n in expected.items() if u == usage)


def test_class_names_per_label_mode():
    from keras_fer.data import CLASS_NAMES, FERPLUS8_CLASS_NAMES, class_names

    assert CLASS_NAMES == ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    assert class_names() == class_names("ferplus") == CLASS_NAMES
    assert class_names("ferplus8") == FERPLUS8_CLASS_NAMES == (*CLASS_NAMES, "Contempt")
    with pytest.raises(ValueError, match="labels must be one of"):
        class_names("affectnet")
