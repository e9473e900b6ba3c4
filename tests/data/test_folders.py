"""Image folders as a data source: layouts, class names, label modes, splits, decoding, bad files, faces, CLI, evaluate.py."""

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from keras_fer.data import (
    CLASS_NAMES,
    FERPLUS8_CLASS_NAMES,
    FolderFormatError,
    folder_class_names,
    folder_dataset,
    read_fer2013,
    read_image_folder,
    scan_image_folder,
    synthetic_faces,
)
from keras_fer.data.__main__ import main as data_main


def save_gray(path, gray, size=None):
    """Writes a (48, 48[, 1]) gray face as the file `path` names, upscaled (cubic) to `size` if given."""
    gray = np.asarray(gray).reshape(gray.shape[:2])
    if size is not None:
        gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_CUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gray).save(path)
    return path


def class_folder(root, folders_and_counts, seed=0):
    """root/<folder>/<i>.png: synthetic faces, `count` per folder."""
    faces, _ = synthetic_faces(sum(folders_and_counts.values()), seed=seed)
    faces = iter(faces)
    for folder, count in folders_and_counts.items():
        for i in range(count):
            save_gray(root / folder / f"{i:03d}.png", next(faces))
    return root


def photo_path_face(path):
    """What predict.py's photo path feeds the model for an image that is a crop already (whole_image)."""
    from keras_fer.faces import DetectedFace, crop_face, read_image

    image = read_image(str(path))
    return crop_face(image, DetectedFace((0, 0, image.shape[1], image.shape[0])), channels=1)


# --- class names, label modes, layouts ---------------------------------------------------------


def test_folder_names_match_classes_without_regard_to_case_and_through_synonyms(tmp_path):
    class_folder(tmp_path, {"ANGER": 3, "Happiness": 2, "joy": 2, "scared": 2, "calm": 2, "Contempt": 2, "Sad": 2})
    folder = scan_image_folder(tmp_path, validation_fraction=0)
    # Canonical FERPlus-8 order, only the classes present.
    assert folder.class_names == ("Angry", "Fear", "Happy", "Sad", "Neutral", "Contempt")
    assert folder.folders == {"ANGER": "Angry", "Contempt": "Contempt", "Happiness": "Happy", "Sad": "Sad",
                              "calm": "Neutral", "joy": "Happy", "scared": "Fear"}
    paths, labels = folder.splits["Training"]
    by_folder = {Path(p).parent.name: folder.class_names[label] for p, label in zip(paths, labels)}
    assert by_folder == folder.folders
    assert np.bincount(labels).tolist() == [3, 2, 4, 2, 2, 2]  # joy and Happiness are one class
    assert folder_class_names(tmp_path) == folder.class_names


def test_unknown_folder_is_refused_by_name_unless_mapped(tmp_path):
    class_folder(tmp_path, {"happy": 2, "pain": 2, "Sad": 2})
    with pytest.raises(FolderFormatError, match=r"pain.*unknown class folder 'pain'.*Happy: happy, happiness, joy"):
        scan_image_folder(tmp_path)
    with pytest.raises(FolderFormatError, match="class_map"):
        scan_image_folder(tmp_path)

    mapped = scan_image_folder(tmp_path, class_map={"PAIN": "Pain"}, validation_fraction=0)
    assert mapped.class_names == ("Happy", "Sad", "Pain")  # a new class comes after the canonical ones
    assert np.bincount(mapped.splits["Training"][1]).tolist() == [2, 2, 2]
    # A mapped value is a class name too: synonyms and case are resolved, None leaves the folder out.
    assert scan_image_folder(tmp_path, class_map={"pain": "surprised"}).class_names == ("Happy", "Sad", "Surprise")
    left_out = scan_image_folder(tmp_path, class_map={"pain": None}, validation_fraction=0)
    assert left_out.class_names == ("Happy", "Sad") and left_out.count() == 4 and left_out.folders["pain"] is None
    with pytest.raises(ValueError, match=r"class_map must map folder names to class names.*'pain': 3"):
        scan_image_folder(tmp_path, class_map={"pain": 3})


def test_label_modes_fix_the_class_indices(tmp_path):
    class_folder(tmp_path, {"happy": 2, "neutral": 2, "contempt": 2})
    by_mode = {}
    for labels in ("folders", "ferplus8", ("Neutral", "Happy", "Contempt")):
        folder = scan_image_folder(tmp_path, labels=labels, validation_fraction=0)
        paths, indices = folder.splits["Training"]
        # Whatever the indices, each file keeps its folder's class.
        assert [folder.class_names[i] for i in indices] == [folder.folders[Path(p).parent.name] for p in paths]
        by_mode[labels if isinstance(labels, str) else "explicit"] = (folder.class_names, folder.splits["Training"][1])
    assert by_mode["folders"][0] == ("Happy", "Neutral", "Contempt")
    assert by_mode["ferplus8"][0] == FERPLUS8_CLASS_NAMES
    assert sorted(set(by_mode["ferplus8"][1].tolist())) == [3, 6, 7]
    assert sorted(set(by_mode["explicit"][1].tolist())) == [0, 1, 2]
    # FER2013's seven classes have no Contempt: the folder is named, with the ways out.
    with pytest.raises(FolderFormatError, match=r"contempt.*'Contempt', which labels='fer2013' lacks.*None"):
        scan_image_folder(tmp_path, labels="fer2013")
    happy_only = scan_image_folder(tmp_path, labels="fer2013", class_map={"contempt": None, "neutral": None})
    assert happy_only.class_names == CLASS_NAMES and set(happy_only.splits["Training"][1].tolist()) == {3}
    with pytest.raises(ValueError, match=r"labels must be one of folders, fer2013, ferplus, ferplus8.*'FER2013'"):
        scan_image_folder(tmp_path, labels="FER2013")


def test_validation_split_is_stratified_and_seeded(tmp_path):
    counts = {name.lower(): 5 + 7 * i for i, name in enumerate(CLASS_NAMES)}  # 5 to 47 images a class
    class_folder(tmp_path, counts)
    first = scan_image_folder(tmp_path, validation_fraction=0.1, seed=3)
    again = scan_image_folder(tmp_path, validation_fraction=0.1, seed=3)
    other = scan_image_folder(tmp_path, validation_fraction=0.1, seed=4)
    assert first.splits["PublicTest"][0] == again.splits["PublicTest"][0]
    assert first.splits["PublicTest"][0] != other.splits["PublicTest"][0]
    for folder in (first, other):
        train, validation = (np.bincount(folder.splits[s][1], minlength=7) for s in ("Training", "PublicTest"))
        expected = [max(1, round(0.1 * n)) for n in counts.values()]
        assert validation.tolist() == expected and (train + validation).tolist() == list(counts.values())
        assert not set(folder.splits["Training"][0]) & set(folder.splits["PublicTest"][0])
    everything = scan_image_folder(tmp_path, validation_fraction=0)
    assert list(everything.splits) == ["Training"] and everything.count() == sum(counts.values())
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(ValueError, match=f"validation_fraction=.*{bad!r}"):
            scan_image_folder(tmp_path, validation_fraction=bad)


def test_split_folders_are_recognised_and_kept_as_given(tmp_path):
    class_folder(tmp_path / "Train", {"happy": 3, "sad": 2}, seed=1)
    class_folder(tmp_path / "VALIDATION", {"Happy": 1, "sad": 1}, seed=2)
    class_folder(tmp_path / "test", {"happy": 2}, seed=3)
    folder = scan_image_folder(tmp_path, validation_fraction=0.5)
    assert folder.has_split_folders
    assert {split: len(paths) for split, (paths, _) in folder.splits.items()} == {
        "Training": 5, "PublicTest": 2, "PrivateTest": 2}
    assert folder.class_names == ("Happy", "Sad")
    assert all(Path(p).parts[-3] == "test" for p in folder.splits["PrivateTest"][0])
    assert "VALIDATION/Happy" in folder.folders

    # Without a validation folder (RAF-DB's train/ and test/), Training gives the validation split.
    without_validation = tmp_path.parent / (tmp_path.name + "_no_val")
    class_folder(without_validation / "train", {"happy": 4, "sad": 4}, seed=1)
    class_folder(without_validation / "test", {"happy": 2}, seed=3)
    drawn = scan_image_folder(without_validation, validation_fraction=0.25, seed=0)
    assert {split: np.bincount(labels).tolist() for split, (_, labels) in drawn.splits.items()} == {
        "Training": [3, 3], "PublicTest": [1, 1], "PrivateTest": [2]}

    (tmp_path / "happy").mkdir()
    with pytest.raises(FolderFormatError, match=r"split folders \(Train, VALIDATION, test\) beside other folders \(happy\)"):
        scan_image_folder(tmp_path)
    shutil.rmtree(tmp_path / "happy")
    (tmp_path / "training").mkdir()
    with pytest.raises(FolderFormatError, match="Train and training are both the Training split"):
        scan_image_folder(tmp_path)


def test_bad_roots_are_named(tmp_path):
    with pytest.raises(FolderFormatError, match=f"{tmp_path / 'missing'}: no such directory"):
        scan_image_folder(tmp_path / "missing")
    with pytest.raises(FolderFormatError, match="no class folders"):
        scan_image_folder(tmp_path)
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "notes.txt").write_text("not an image")
    with pytest.raises(FolderFormatError, match="no image files"):
        scan_image_folder(tmp_path)


# --- decoding: the photo path's pixels ------------------------------------------------------------


def test_images_of_any_format_and_size_read_as_the_photo_path_reads_them(tmp_path):
    faces, _ = synthetic_faces(12, seed=7)
    gray = faces[..., 0]
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (48, 48, 3), np.uint8)
    files = {}

    def write(name, array, **options):
        path = tmp_path / "happy" / name
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(array).save(path, **options)
        files[name] = path

    write("gray.png", gray[0])
    write("rgb.png", np.repeat(gray[1][..., None], 3, -1))
    write("rgba.png", np.dstack([gray[2]] * 3 + [np.full_like(gray[2], 90)]))  # alpha dropped, not blended
    write("la.png", np.dstack([gray[3], np.full_like(gray[3], 0)]))
    palette = Image.fromarray(gray[4], "L").convert("P")  # 256 gray entries: exact
    palette.save(tmp_path / "happy" / "palette.png")
    files["palette.png"] = tmp_path / "happy" / "palette.png"
    write("sixteen.png", gray[5].astype(np.uint16) * 257)
    write("gray.bmp", gray[6])
    write("gray.gif", gray[7])
    write("lossless.webp", np.repeat(gray[8][..., None], 3, -1), lossless=True)
    write("colour.png", colour)
    write("photo.jpg", np.dstack([gray[9], gray[9] // 2, 255 - gray[9]]), quality=90)
    write("upscaled.png", cv2.resize(gray[10], (144, 144), interpolation=cv2.INTER_CUBIC))
    write("odd.png", cv2.resize(colour, (100, 80), interpolation=cv2.INTER_AREA))
    write("small.png", gray[11][::2, ::2])

    folder = scan_image_folder(tmp_path, validation_fraction=0)
    assert not folder.unreadable and folder.count() == len(files)
    images, labels = read_image_folder(folder)
    read = dict(zip(folder.splits["Training"][0], images[..., 0].astype(int)))
    got = {name: read[str(path)] for name, path in files.items()}

    # Lossless files of a gray face come back with the face's own pixels.
    for name, index in [("gray.png", 0), ("rgb.png", 1), ("rgba.png", 2), ("la.png", 3), ("palette.png", 4),
                        ("sixteen.png", 5), ("gray.bmp", 6), ("gray.gif", 7), ("lossless.webp", 8)]:
        np.testing.assert_array_equal(got[name], gray[index], err_msg=name)
    # Colour and JPEG: OpenCV's gray, to the level (fixed-point weights, libjpeg's accurate DCT).
    for name in ("colour.png", "photo.jpg", "upscaled.png"):
        np.testing.assert_allclose(got[name], photo_path_face(files[name])[..., 0], atol=1, err_msg=name)
    # Other sizes: the photo path warps then area-averages, here one area resize: nearly the same.
    for name in ("odd.png", "small.png"):
        difference = np.abs(got[name] - photo_path_face(files[name])[..., 0].astype(int))
        assert difference.mean() < 6, (name, difference.mean())
    assert np.abs(got["upscaled.png"] - gray[10]).mean() < 3  # the cubic round trip, not the reader
    assert labels.tolist() == [0] * len(files)


def test_exif_orientation_is_applied_as_the_photo_path_applies_it(tmp_path):
    face = synthetic_faces(1, seed=3)[0][0, ..., 0]
    tall = cv2.resize(face, (96, 144), interpolation=cv2.INTER_AREA)  # not square: a wrong turn shows
    for orientation in (1, 3, 6, 8):
        image = Image.fromarray(tall)
        exif = image.getexif()
        exif[0x0112] = orientation
        (tmp_path / "sad").mkdir(exist_ok=True)
        image.save(tmp_path / "sad" / f"o{orientation}.jpg", exif=exif.tobytes(), quality=95)
    folder = scan_image_folder(tmp_path, validation_fraction=0)
    images, _ = read_image_folder(folder)
    for path, image in zip(folder.splits["Training"][0], images):
        # Not square: the photo path warps and area-averages, here one area resize; a wrong turn differs by tens.
        assert np.abs(image[..., 0].astype(int) - photo_path_face(path)[..., 0]).mean() < 1.5, path
    assert np.abs(images[0].astype(int) - images[2].astype(int)).mean() > 10  # o1 and o6 differ


# --- unreadable files ---------------------------------------------------------------------------


def test_unreadable_files_are_named_counted_and_skipped_without_stopping(tmp_path, caplog):
    class_folder(tmp_path, {"happy": 6, "sad": 6})
    (tmp_path / "happy" / "x.png").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "happy" / "empty.jpg").write_bytes(b"")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "sad" / "scan.tiff")
    (tmp_path / "sad" / "tiff_named.png").write_bytes((tmp_path / "sad" / "scan.tiff").read_bytes())
    whole = tmp_path / "sad" / "whole.jpg"
    Image.fromarray(synthetic_faces(1, seed=9)[0][0, ..., 0]).resize((300, 300)).save(whole, quality=90)
    (tmp_path / "sad" / "truncated.jpg").write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    (tmp_path / "sad" / "readme.txt").write_text("notes")

    with caplog.at_level(logging.WARNING, logger="keras_fer.data.folders"):
        folder = scan_image_folder(tmp_path, validation_fraction=0)
    unreadable = {Path(path).name: reason for path, reason in folder.unreadable}
    assert set(unreadable) == {"x.png", "empty.jpg", "tiff_named.png"}
    assert unreadable["x.png"].startswith("not an image") and "TIFF image" in unreadable["tiff_named.png"]
    assert "left out 3 unreadable image files" in caplog.text and "x.png" in caplog.text
    assert folder.ignored == {".tiff": 1, ".txt": 1}
    assert folder.count() == 14  # 12 faces, whole.jpg and truncated.jpg, whose header is whole

    # The truncated body fails in tf.data: dropped, named once the pass ends, and the read goes on.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keras_fer.data.folders"):
        images, labels = read_image_folder(folder)
    assert len(images) == 13 and np.bincount(labels).tolist() == [6, 7]
    assert folder.skipped == {str(tmp_path / "sad" / "truncated.jpg"): "cannot be decoded (damaged or truncated)"}
    assert "skipped 1 images while reading (1 cannot be decoded" in caplog.text and "truncated.jpg" in caplog.text

    # The training pipeline: two shuffled epochs of every readable face, the broken one dropped each time.
    dataset = folder_dataset(folder, "Training", batch_size=4, shuffle=True, seed=0)
    epochs = [np.concatenate([batch_labels for _, batch_labels in dataset.as_numpy_iterator()]) for _ in range(2)]
    for epoch in epochs:
        assert np.bincount(epoch).tolist() == [6, 7]
    assert epochs[0].tolist() != epochs[1].tolist() or len(set(epochs[0].tolist())) == 1
    first = next(iter(dataset))
    assert first[0].dtype.name == "uint8" and tuple(first[0].shape) == (4, 48, 48, 1) and first[1].dtype.name == "int32"
    cached = folder_dataset(folder, "Training", batch_size=5, cache=True, shuffle=True, seed=1, repeat=True)
    assert sum(len(labels) for _, labels in cached.take(6).as_numpy_iterator()) == 30


def test_bad_arguments_quote_the_value(tmp_path):
    class_folder(tmp_path, {"happy": 3, "sad": 3})
    folder = scan_image_folder(tmp_path)
    with pytest.raises(ValueError, match="batch_size=0"):
        folder_dataset(folder, batch_size=0)
    with pytest.raises(ValueError, match="split=.*'Validation'"):
        read_image_folder(folder, "Validation")
    with pytest.raises(ValueError, match="has no PrivateTest images"):
        read_image_folder(folder, "PrivateTest")
    with pytest.raises(ValueError, match="detect_faces=.*'yes'"):
        read_image_folder(folder, detect_faces="yes")
    with pytest.raises(ValueError, match="seed=.*'0'"):
        scan_image_folder(tmp_path, seed="0")


# --- faces in bigger images -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_public_test(real_csv):
    """PublicTest of the shared FER2013 file (tests/data/conftest.py skips where it is absent)."""
    return read_fer2013(real_csv, "PublicTest")


def test_detect_faces_crops_a_face_in_a_frame_as_the_photo_path_does(tmp_path, real_public_test):
    from benchmarks.face_frames import finds, placed_faces
    from keras_fer.faces import crop_face, make_detector

    faces, labels = real_public_test
    chosen = np.flatnonzero(labels == 3)[:4]  # four Happy faces
    frames = list(placed_faces(faces[chosen], labels[chosen], seed=1, backgrounds=("flat", "coffee"), sides=(120, 180)))
    (tmp_path / "happy").mkdir()
    for frame in frames:
        cv2.imwrite(str(tmp_path / "happy" / f"{frame.index}.png"), frame.image)
    cv2.imwrite(str(tmp_path / "happy" / "wall.png"), np.full((480, 640, 3), 128, np.uint8))  # no face
    folder = scan_image_folder(tmp_path, labels="fer2013", validation_fraction=0)
    crops, crop_labels = read_image_folder(folder, detect_faces=True)
    assert folder.skipped == {str(tmp_path / "happy" / "wall.png"): "no face found"}
    assert crops.shape == (4, 48, 48, 1) and crop_labels.tolist() == [3] * 4

    detector = make_detector()
    for frame, crop in zip(frames, crops):
        found = detector.detect(frame.image)
        assert finds(found[0].box, frame.box)  # the crop comes from the placed face
        np.testing.assert_array_equal(crop, crop_face(frame.image, found[0], channels=1, align=True))
        # It shows the face that was placed: closer to it than to the other faces.
        distances = [np.abs(crop[..., 0].astype(int) - faces[i, ..., 0]).mean() for i in chosen]
        assert int(np.argmin(distances)) == frame.index


# --- the checking CLI ------------------------------------------------------------------------------


def test_cli_reports_classes_mapping_counts_and_unreadable_files(tmp_path, capsys):
    class_folder(tmp_path, {"Angry": 10, "joy": 20, "calm": 10, "pain": 5})
    (tmp_path / "joy" / "x.png").write_bytes(b"\x89PNG but not really")
    assert data_main([str(tmp_path), "--class-map", "pain=Pain", "--validation-fraction", "0.2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class_names"] == ["Angry", "Happy", "Neutral", "Pain"]
    assert report["folders"] == {"Angry": "Angry", "calm": "Neutral", "joy": "Happy", "pain": "Pain"}
    assert report["splits"]["Training"]["classes"] == {"Angry": 8, "Happy": 16, "Neutral": 8, "Pain": 4}
    assert report["splits"]["PublicTest"]["classes"] == {"Angry": 2, "Happy": 4, "Neutral": 2, "Pain": 1}
    assert report["unreadable"] == [{"path": str(tmp_path / "joy" / "x.png"),
                                     "reason": report["unreadable"][0]["reason"]}]
    assert report["images"] == 45 and report["layout"] == "class folders"

    assert data_main([str(tmp_path), "--class-map", "pain=Pain"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"{tmp_path}: 45 readable images in class folders, labels folders"
    assert "joy -> Happy" in table[2] and "pain -> Pain" in table[2]
    assert table[4].split() == ["Training", "9", "18", "9", "4", "40"]
    assert any(line.strip().startswith(f"{tmp_path / 'joy' / 'x.png'}: not an image") for line in table)

    assert data_main([str(tmp_path)]) == 1
    assert "unknown class folder 'pain'" in capsys.readouterr().err
    assert data_main([str(tmp_path), "--labels", "fer2013", "--class-map", "pain="]) == 0


# --- evaluate.py on a folder --------------------------------------------------------------------


# File forms of write_evaluation_folder, face i in form i % 20. The lossless ones must read back
# exactly. JPEG and cubic upscaling change pixels by 1-2 levels on average, which alone flips the
# shipped model's prediction on about 5% of such faces (measured on 600 PublicTest faces, all
# upscaled: 30 flips, 7 net), a property of the model, not of the reader: they are 2 forms of 20,
# so that 0.5 points bounds what the reader does.
FORMS = ("png", "rgb png", "tinted png", "rgba png", "bmp", "jpeg", "upscaled cubic", "upscaled 3x", "palette png",
         "gif", "gray + alpha png", "16-bit png", "lossless webp", "upscaled 2x rgb", "png", "rgb png", "rgba png",
         "bmp", "upscaled 3x", "gif")
LOSSY_FORMS = {"tinted png", "jpeg", "upscaled cubic"}


def write_evaluation_folder(root, faces, labels, seed=0):
    """The faces as class folders in mixed forms (FORMS), folder names in two spellings, and a broken x.png."""
    rng = np.random.default_rng(seed)
    names = [name.lower() for name in CLASS_NAMES]
    for i, (face, label) in enumerate(zip(faces[..., 0], labels)):
        directory = root / (names[label] if i % 2 else CLASS_NAMES[label].upper())
        directory.mkdir(parents=True, exist_ok=True)
        rgb = np.repeat(face[..., None], 3, -1)
        form = FORMS[i % len(FORMS)]
        if form == "png":
            Image.fromarray(face).save(directory / f"{i}.png")
        elif form == "rgb png":
            Image.fromarray(rgb).save(directory / f"{i}.png")
        elif form == "tinted png":  # R up, B down, G balancing them so that the gray level stays
            tint = np.array([1.08, 0.0, 0.9])
            tint[1] = (1 - 0.299 * tint[0] - 0.114 * tint[2]) / 0.587
            Image.fromarray(np.clip(face[..., None] * tint, 0, 255).round().astype(np.uint8)).save(directory / f"{i}.png")
        elif form == "rgba png":
            Image.fromarray(np.dstack([rgb, np.full_like(face, 200)])).save(directory / f"{i}.png")
        elif form == "bmp":
            Image.fromarray(rgb).save(directory / f"{i}.bmp")
        elif form == "jpeg":
            Image.fromarray(rgb).save(directory / f"{i}.jpg", quality=95)
        elif form == "upscaled cubic":
            side = int(rng.integers(96, 200))
            Image.fromarray(cv2.resize(rgb, (side, side), interpolation=cv2.INTER_CUBIC)).save(directory / f"{i}.png")
        elif form == "upscaled 3x":
            Image.fromarray(np.kron(face, np.ones((3, 3), np.uint8))).save(directory / f"{i}.png")
        elif form == "palette png":
            Image.fromarray(face).convert("P").save(directory / f"{i}.png")
        elif form == "gif":
            Image.fromarray(face).save(directory / f"{i}.gif")
        elif form == "gray + alpha png":
            Image.fromarray(np.dstack([face, np.full_like(face, 255)]), "LA").save(directory / f"{i}.png")
        elif form == "16-bit png":
            Image.fromarray(face.astype(np.uint16) * 257).save(directory / f"{i}.png")
        elif form == "lossless webp":
            Image.fromarray(rgb).save(directory / f"{i}.webp", lossless=True)
        else:
            assert form == "upscaled 2x rgb"
            Image.fromarray(np.kron(rgb, np.ones((2, 2, 1), np.uint8))).save(directory / f"{i}.png")
    (root / names[3] / "x.png").write_bytes(rng.bytes(700))
    return root


@pytest.mark.parametrize("source", ["real", "synthetic"])
def test_evaluate_py_on_a_folder_matches_the_csv_rows_it_came_from(source, tmp_path, capsys, request):
    from keras_fer import pretrained
    from keras_fer.evaluation import main

    if source == "real":
        faces, labels = request.getfixturevalue("real_public_test")
        chosen = np.random.default_rng(0).choice(len(labels), 600, replace=False)
        faces, labels = faces[chosen], labels[chosen]
    else:  # the twin that runs everywhere: the same checks on synthetic faces
        faces, labels = synthetic_faces(600, seed=11)
    data = write_evaluation_folder(tmp_path / "faces", faces, labels)
    model = pretrained.load("fer2013")
    expected = float((model.predict(faces.astype("float32"), verbose=0).argmax(-1) == labels).mean())

    report = main(["--model", "fer2013", "--data", str(data), "--output-dir", str(tmp_path / "out")])
    assert report["num_images"] == len(labels) and report["split"] == "all"
    assert report["confusion_matrix"]["class_names"] == list(CLASS_NAMES)
    assert abs(report["accuracy"] - expected) <= 0.005, (report["accuracy"], expected)
    assert report["unreadable"] == [{"path": str(data / "happy" / "x.png"),
                                     "reason": "not an image (Pillow cannot identify it)"}]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["accuracy"] == report["accuracy"]
    out = capsys.readouterr().out
    assert f"unreadable: 1 files left out: {data / 'happy' / 'x.png'}" in out
    assert f"all: accuracy {report['accuracy']:.4f}" in out

    # Face by face: every lossless file is its CSV row exactly, with the row's label.
    folder = scan_image_folder(data, labels="fer2013", validation_fraction=0)
    images, read_labels = read_image_folder(folder)
    rows = np.array([int(Path(path).stem) for path in folder.splits["Training"][0]])
    np.testing.assert_array_equal(read_labels, labels[rows])
    lossless = np.array([FORMS[row % len(FORMS)] not in LOSSY_FORMS for row in rows])
    np.testing.assert_array_equal(images[lossless], faces[rows[lossless]])
    assert np.abs(images[~lossless].astype(int) - faces[rows[~lossless]]).mean() < 2


def test_evaluate_py_folder_errors(tmp_path):
    from keras_fer.evaluation import main

    class_folder(tmp_path / "flat", {"happy": 3, "contempt": 3})
    class_folder(tmp_path / "splits" / "train", {"happy": 3})
    class_folder(tmp_path / "splits" / "test", {"happy": 3})
    cases = [
        (["--data", str(tmp_path / "flat")], "holds class 'Contempt', which labels='fer2013' lacks"),
        (["--data", str(tmp_path / "splits")],
         r"has split folders \(Training, PublicTest, PrivateTest\): pick one with --split"),
        (["--data", str(tmp_path / "flat"), "--labels", "ferplus8", "--split", "PrivateTest"],
         "has no PrivateTest images"),
        (["--data", str(tmp_path / "flat"), "--class-map", "contempt"], "FOLDER=CLASS pairs"),
    ]
    for arguments, message in cases:
        with pytest.raises(SystemExit, match=message):
            main(["--model", "fer2013", "--output-dir", str(tmp_path / "out"), *arguments])
    # An 8-class folder and the 7-output model: refused before any work.
    with pytest.raises(SystemExit, match="has 7 outputs, but the data's classes are 8"):
        main(["--model", "fer2013", "--data", str(tmp_path / "flat"), "--labels", "ferplus8",
              "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
