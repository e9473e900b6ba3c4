"""tools/compare_models.py: ensembles averaged as the shipped ensemble averages, the paired rows, image folders,
refusals."""

import json

import pytest
from PIL import Image

from benchmarks.common import DATA_FILE
from keras_fer.data import CLASS_NAMES, synthetic
from tools.compare_models import compare, ensemble_members, main

FERPLUS_FILE = DATA_FILE.parent / "fer2013new.csv"


def test_an_ensemble_argument_names_its_networks_and_an_empty_name_is_refused():
    assert ensemble_members("fer2013") == ["fer2013"]
    assert ensemble_members("ferplus:member1+runs/x/best.keras") == ["ferplus:member1", "runs/x/best.keras"]
    with pytest.raises(ValueError, match=r"'fer2013\+\+ferplus': an empty network name"):
        ensemble_members("fer2013++ferplus")


def test_a_network_averaged_with_itself_is_run_once_and_changes_no_face(capsys):
    images, labels = synthetic.synthetic_faces(70, seed=3)
    rows = compare(["fer2013", "fer2013+fer2013"], images, labels, class_names=CLASS_NAMES, batch_size=32)
    assert capsys.readouterr().err.count("fer2013: predicting 70 faces") == 1
    assert rows[0]["accuracy"] == rows[1]["accuracy"]
    assert rows[1]["networks"] == 2 and rows[1]["gain_points"] == 0
    assert rows[1]["right_where_baseline_wrong"] == rows[1]["wrong_where_baseline_right"] == 0


def test_a_network_with_other_classes_than_the_labels_is_refused_by_name():
    images, labels = synthetic.synthetic_faces(8, seed=3)
    with pytest.raises(ValueError, match="ferplus:member1: 8 outputs, but the labels have 7 classes"):
        compare(["fer2013", "ferplus:member1"], images, labels, class_names=CLASS_NAMES)


def test_a_network_whose_classes_are_in_another_order_is_refused_by_name(tmp_path):
    from keras_fer import pretrained

    run = tmp_path / "run"
    run.mkdir()
    pretrained.load("fer2013").save(run / "best.keras")
    reordered = [CLASS_NAMES[3], *CLASS_NAMES[:3], *CLASS_NAMES[4:]]
    (run / "class_names.json").write_text(json.dumps(reordered))
    images, labels = synthetic.synthetic_faces(8, seed=3)
    with pytest.raises(ValueError, match=f"{run / 'best.keras'}: its outputs are Happy, Angry, .* but the labels "
                                         "index Angry, Disgust"):
        compare(["fer2013", str(run / "best.keras")], images, labels, class_names=CLASS_NAMES)


def test_the_command_line_prints_the_table_and_writes_the_rows_as_json(tmp_path, capsys):
    csv = tmp_path / "fer2013.csv"
    synthetic.write_synthetic_fer2013(csv, {"Training": 1, "PublicTest": 5, "PrivateTest": 1}, seed=2)
    output = tmp_path / "rows.json"
    rows = main(["fer2013", "fer2013+fer2013", "--data", str(csv), "--output", str(output)])
    written = json.loads(output.read_text())
    assert written["faces"] == 35 and written["rows"] == rows
    assert f"| fer2013 | 1 | {100 * rows[0]['accuracy']:.2f}% | baseline |" in capsys.readouterr().out


def write_class_folders(root, images, labels):
    """The faces as PNG class folders, named in two spellings, and one file that is not an image."""
    for i, (face, label) in enumerate(zip(images[..., 0], labels)):
        name = CLASS_NAMES[label]
        directory = root / (name.lower() if i % 2 else name.upper())
        directory.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(directory / f"{i}.png")
    (root / "happy" / "broken.png").write_bytes(b"not an image")
    return root


def test_an_image_folder_scores_as_the_faces_it_holds_and_its_unreadable_file_is_counted(tmp_path, capsys):
    images, labels = synthetic.synthetic_faces(42, seed=5)
    folder = write_class_folders(tmp_path / "faces", images, labels)
    expected = compare(["fer2013"], images, labels, class_names=CLASS_NAMES)[0]["accuracy"]
    rows = main(["fer2013", "fer2013+fer2013", "--data", str(folder), "--output", str(tmp_path / "rows.json")])
    assert rows[0]["accuracy"] == pytest.approx(expected) and rows[1]["gain_points"] == 0
    written = json.loads((tmp_path / "rows.json").read_text())
    assert (written["split"], written["faces"]) == ("all", 42)
    assert "files left out: 1 unreadable, 0 skipped while reading" in capsys.readouterr().out


def test_an_image_folder_with_a_class_the_model_lacks_is_refused_by_name(tmp_path):
    images, labels = synthetic.synthetic_faces(14, seed=5)
    folder = write_class_folders(tmp_path / "faces", images, labels)
    (folder / "pain").mkdir()
    Image.fromarray(images[0, ..., 0]).save(folder / "pain" / "0.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["fer2013", "--data", str(folder)])
    assert f"--data {folder}" in str(exit_info.value.code) and "pain" in str(exit_info.value.code)


def test_a_folder_of_some_of_a_presets_classes_is_read_against_all_of_them_with_folder_labels(tmp_path):
    # Happy and Sad folders only: their labels must index the preset's seven outputs (3 and 4),
    # as they do without --labels, not a two-class model's.
    from keras_fer.evaluation import scan_evaluation_folder

    images, labels = synthetic.synthetic_faces(42, seed=5)
    kept = (labels == 3) | (labels == 4)
    folder = write_class_folders(tmp_path / "faces", images[kept], labels[kept])
    read, _ = scan_evaluation_folder(folder, None, "folders", "fer2013")
    assert read.class_names == CLASS_NAMES
    folder_labels = [label for paths, split_labels in read.splits.values() for label in split_labels.tolist()]
    assert sorted(set(folder_labels)) == [3, 4] and len(folder_labels) == kept.sum()
    expected = compare(["fer2013"], images[kept], labels[kept], class_names=CLASS_NAMES)[0]["accuracy"]
    assert main(["fer2013", "--data", str(folder), "--labels", "folders"])[0]["accuracy"] == pytest.approx(expected)


def test_a_missing_data_file_and_folder_labels_on_a_csv_are_errors_naming_them(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["fer2013", "--data", str(tmp_path / "absent.csv")])
    assert f"--data {tmp_path / 'absent.csv'}: no such file" in str(exit_info.value.code)
    csv = tmp_path / "fer2013.csv"
    synthetic.write_synthetic_fer2013(csv, {"Training": 1, "PublicTest": 1, "PrivateTest": 1}, seed=2)
    with pytest.raises(SystemExit) as exit_info:
        main(["fer2013", "--data", str(csv), "--labels", "folders"])
    assert f"--labels folders takes an image folder's classes, but --data {csv} is a CSV" in str(exit_info.value.code)


@pytest.mark.skipif(not FERPLUS_FILE.exists(), reason="needs the real FER2013 and FERPlus files in ../shared")
def test_the_ferplus_members_averaged_here_score_as_the_shipped_ensemble_on_real_faces(tmp_path, capsys):
    from keras_fer import data as fer_data

    images, labels = fer_data.read_fer2013(str(DATA_FILE), usage="PublicTest", labels="ferplus8",
                                           ferplus_path=str(FERPLUS_FILE))
    images, labels = images[:300], labels[:300]
    rows = compare(["ferplus", "ferplus:member1+ferplus:member2", "ferplus:member1"], images, labels,
                   class_names=fer_data.class_names("ferplus8"), batch_size=100)
    # The preset averages its two networks' probabilities with equal weights inside its graph: the same
    # answers, but for a float tie or two.
    assert abs(rows[1]["accuracy"] - rows[0]["accuracy"]) <= 2 / 300
    assert rows[1]["right_where_baseline_wrong"] + rows[1]["wrong_where_baseline_right"] <= 2
    # One network alone is a different model: it disagrees with the pair on some faces.
    assert rows[2]["right_where_baseline_wrong"] + rows[2]["wrong_where_baseline_right"] > 0
    # The preset runs two networks however it is named: as itself or member by member.
    assert [row["networks"] for row in rows] == [2, 2, 1]
