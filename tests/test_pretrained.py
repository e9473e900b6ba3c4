"""The shipped model: its file and sha256, loading on both backends, its recorded accuracy, packaging."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_backends import CROSS_BACKEND_ATOL, FACES, run_on_jax
from test_predict import ASTRONAUT

from keras_fer import pretrained

# Not imported from conftest: tests/data has a conftest module of its own, and under pytest-xdist
# `from conftest import ...` may find that one.
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CSV = REPO_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_public.csv.gz"
SHARED_FERPLUS = REPO_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013new.csv"
MAX_SHIPPED_BYTES = 40 * 2**20
# Top-1 agreement of int8 with the Keras model that a well-trained model must reach.
INT8_AGREEMENT_GOAL = 0.98


@pytest.fixture(scope="module")
def shipped():
    return pretrained.load("fer2013")


@pytest.mark.parametrize("name", pretrained.available())
def test_every_shipped_file_has_its_registered_sha256_and_fits_the_size_limit(name):
    path = pretrained.preset_path(name)
    assert pretrained.file_sha256(path) == pretrained.PRESETS[name]["sha256"]
    assert path.stat().st_size <= MAX_SHIPPED_BYTES


def test_a_damaged_file_is_refused_with_both_digests(tmp_path):
    damaged = tmp_path / "fer2013.npz"
    shutil.copy(pretrained.preset_path("fer2013"), damaged)
    with open(damaged, "r+b") as file:  # one byte in the middle of the weights
        file.seek(damaged.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(pretrained.PresetError, match=r"sha256 is [0-9a-f]{64}, expected " + pretrained.PRESETS["fer2013"]["sha256"]):
        pretrained.load_file(damaged, pretrained.PRESETS["fer2013"]["sha256"])


def test_an_unknown_preset_name_is_quoted_with_the_available_ones():
    with pytest.raises(pretrained.PresetError, match=r"Unknown preset 'fer2014'; available: fer2013, fer2013_ensemble, ferplus"):
        pretrained.load("fer2014")


def test_the_shipped_model_is_the_documented_network(shipped):
    build = pretrained.metadata("fer2013")["build"]
    assert shipped.class_names == ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    assert shipped.input_shape == (None, 48, 48, 1) and shipped.output_shape == (None, 7)
    assert build["use_masks"] and build["use_eca"]  # the paper's network family: masks with ECA
    assert [layer.name for layer in shipped.layers if layer.name.endswith("_mask")] == [
        "stage1_mask", "stage2_mask", "stage3_mask", "stage4_mask"]
    probabilities = shipped.predict(FACES, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


NAMES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")


def trained_looking_networks(builds):
    """[(build, float16 weights)] of fresh networks whose normalization statistics moved off their defaults."""
    from keras_fer.models import build_model

    networks = []
    for build in builds:
        network = build_model(**build, augmentation=None)
        network(FACES, training=True)
        networks.append((build, pretrained.float16_weights(network, build)))
    return networks


def test_a_preset_file_of_two_networks_loads_as_their_ensemble(tmp_path):
    builds = [dict(input_size=48, width=4, num_classes=7, stem="conv3x3_s2", use_masks=False),
              dict(input_size=32, width=4, num_classes=7, stem="conv3x3", mask_depths=[2, 2, 1, 1])]
    networks, names = trained_looking_networks(builds), NAMES
    path = tmp_path / "ensemble.npz"
    sha256 = pretrained.save(path, networks, names, {"labels": "fer2013"})
    ensemble = pretrained.load_file(path, sha256)
    assert ensemble.class_names == names
    assert [layer.name for layer in ensemble.layers] == ["faces", "member1", "member2", "average_members"]
    members = [pretrained.build_with_weights(build, weights, names) for build, weights in networks]
    answers = [member.predict(FACES, verbose=0) for member in members]
    assert np.abs(answers[0] - answers[1]).max() > 1e-3
    np.testing.assert_allclose(ensemble.predict(FACES, verbose=0), (answers[0] + answers[1]) / 2, atol=1e-6)
    metadata, weights = pretrained.read_preset_file(path)
    assert metadata[pretrained.MEMBERS_KEY] == builds and "build" not in metadata
    assert {key.split("/")[0] for key in weights} == {"member1", "member2"}
    # Weights outside every member, and a member's weights under another's build, are refused.
    with pytest.raises(pretrained.PresetError, match=r"weights of no member of the ensemble: \['member3/kernel'\]"):
        pretrained.networks_of(metadata, {**weights, "member3/kernel": np.zeros(1)})
    swapped = {**metadata, pretrained.MEMBERS_KEY: builds[::-1]}
    with pytest.raises(pretrained.PresetError, match=r"swapped \(member1\): the weights do not fit the network"):
        pretrained.model_from_networks(pretrained.networks_of(swapped, weights), names, source="swapped")


def test_int8_storage_halves_the_file_and_keeps_every_kernel_within_half_a_step_of_its_value(tmp_path):
    networks = trained_looking_networks([
        dict(input_size=48, width=8, num_classes=7, stem="conv3x3_s2", use_masks=False),
        dict(input_size=48, width=8, num_classes=7, stem="conv3x3_s2", mask_depths=[2, 2, 1, 1])])
    names = NAMES
    half, int8 = tmp_path / "float16.npz", tmp_path / "int8.npz"
    pretrained.save(half, networks, names, {"labels": "fer2013"})
    pretrained.save(int8, networks, names, {"labels": "fer2013"}, weight_storage="int8")
    assert int8.stat().st_size < 0.65 * half.stat().st_size  # at width 8; 0.55 for both shipped presets
    metadata, weights = pretrained.read_preset_file(int8)
    assert metadata["weight_storage"] == "int8"
    with np.load(int8) as archive:
        scales = {key[len(pretrained.SCALES_PREFIX):]: archive[key] for key in archive.files
                  if key.startswith(pretrained.SCALES_PREFIX)}
        stored = {key: archive[key].dtype for key in archive.files if key.startswith(pretrained.WEIGHTS_PREFIX)}
    # Every large kernel of both members is int8 with a scale per output channel; the rest is float16.
    assert {path.split("/")[0] for path in scales} == {"member1", "member2"}
    for key, dtype in stored.items():
        path = key[len(pretrained.WEIGHTS_PREFIX):]
        original = dict(networks[int(path[6]) - 1][1])[path.split("/", 1)[1]]
        if path in scales:
            assert dtype == np.int8 and original.size >= pretrained.INT8_MIN_SIZE
            assert scales[path].shape == (original.shape[-1],)
            assert np.all(np.abs(weights[path] - original.astype(np.float32)) <= scales[path] / 2 + 1e-3 * scales[path])
        else:
            assert dtype == np.float16 and (original.size < pretrained.INT8_MIN_SIZE or original.ndim < 2)
            assert np.array_equal(weights[path], original)
    # The file loads as the same ensemble, within what int8 kernels change.
    answers = [pretrained.load_file(path).predict(FACES, verbose=0) for path in (half, int8)]
    assert np.abs(answers[0] - answers[1]).max() < 0.02
    with pytest.raises(ValueError, match=r"weight_storage must be one of float16, int8. Received: weight_storage='int4'"):
        pretrained.save(tmp_path / "int4.npz", networks, names, {}, weight_storage="int4")


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="needs the real FER2013 file in ../shared")
def test_the_shipped_model_with_int8_kernels_labels_real_faces_as_it_does(shipped):
    from keras_fer.data import read_fer2013

    faces, labels = read_fer2013(SHARED_CSV, usage="PublicTest")
    faces, labels = faces[:1000], labels[:1000]
    metadata, weights = pretrained.read_shipped_file("fer2013")
    int8 = pretrained.build_with_weights(metadata["build"], pretrained.stored_weights(weights, "int8"),
                                         metadata["class_names"])
    as_shipped = shipped.predict(faces, verbose=0).argmax(axis=1)
    with_int8 = int8.predict(faces, verbose=0).argmax(axis=1)
    assert np.mean(as_shipped == with_int8) >= 0.99
    assert abs(np.mean(as_shipped == labels) - np.mean(with_int8 == labels)) <= 0.005


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="needs the real FER2013 file in ../shared")
@pytest.mark.parametrize("name", ["fer2013", "fer2013_ensemble"])
def test_each_fer2013_preset_reproduces_its_recorded_publictest_accuracy_exactly(name):
    from keras_fer.evaluation import evaluate_split

    model = pretrained.load(name)
    recorded = pretrained.metadata(name)["provenance"]["shipped_validation"]
    report = evaluate_split(model, SHARED_CSV, "PublicTest", class_names=model.class_names)
    assert report["num_images"] == recorded["num_images"] == 3589
    assert report["accuracy"] == recorded["accuracy"]
    assert report["confusion_matrix"] == recorded["confusion_matrix"]


@pytest.mark.skipif(not SHARED_FERPLUS.exists(), reason="needs the real FER2013 and FERPlus files in ../shared")
def test_the_ferplus_preset_reproduces_its_recorded_ferplus_publictest_accuracy_exactly():
    from keras_fer.evaluation import evaluate_split

    model = pretrained.load("ferplus")
    record = pretrained.metadata("ferplus")
    assert model.class_names == ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral", "Contempt")
    assert record["provenance"]["labels"] == "ferplus8"
    recorded = record["provenance"]["shipped_validation"]
    report = evaluate_split(model, SHARED_CSV, "PublicTest", labels="ferplus8", ferplus_path=SHARED_FERPLUS,
                            class_names=model.class_names)
    assert report["num_images"] == recorded["num_images"] == 3396
    assert report["accuracy"] == recorded["accuracy"]
    assert report["confusion_matrix"] == recorded["confusion_matrix"]


def test_the_fer2013_ensemble_is_the_fer2013_network_and_one_of_another_seed():
    _, build, weights = pretrained.preset_network("fer2013")
    metadata1, build1, weights1 = pretrained.preset_network("fer2013_ensemble:member1")
    provenance = pretrained.metadata("fer2013")["provenance"]
    # The member keeps the network's record; the preset's own PublicTest figures are the pair's.
    assert build1 == build and metadata1["provenance"] == {key: value for key, value in provenance.items()
                                                           if key != "shipped_validation"}
    assert weights1.keys() == weights.keys() and all(np.array_equal(weights1[key], weights[key]) for key in weights)
    metadata2, build2, weights2 = pretrained.preset_network("fer2013_ensemble:member2")
    assert build2 == build  # the same recipe and network...
    assert metadata2["provenance"]["seed"] == 43 != metadata1["provenance"]["seed"]  # ...from another seed
    assert not np.array_equal(weights2["predictions/kernel"], weights["predictions/kernel"])


def test_each_network_of_the_ferplus_ensemble_loads_alone_and_their_mean_is_the_preset():
    ensemble = pretrained.load("ferplus")
    members = [pretrained.load(f"ferplus:member{index}") for index in (1, 2)]
    assert [member.class_names for member in members] == [ensemble.class_names] * 2
    assert [member.get_layer("stem_conv").strides for member in members] == [(2, 2), (1, 1)]
    answers = [member.predict(FACES, verbose=0) for member in members]
    assert np.abs(answers[0] - answers[1]).max() > 1e-3
    np.testing.assert_allclose(ensemble.predict(FACES, verbose=0), (answers[0] + answers[1]) / 2, atol=1e-6)
    for name in ("ferplus:member3", "ferplus:", "fer2013:member1"):
        with pytest.raises(pretrained.PresetError, match=rf"has no network '{name}'; name one of .* Received: "):
            pretrained.load(name)


def test_one_network_of_the_ferplus_ensemble_comes_with_its_own_build_and_provenance():
    whole = pretrained.metadata("ferplus")
    for index in (1, 2):
        metadata, build, weights = pretrained.preset_network(f"ferplus:member{index}")
        assert build == metadata["build"] == whole[pretrained.MEMBERS_KEY][index - 1]
        assert metadata["provenance"] == whole["provenance"]["members"][index - 1]
        assert pretrained.metadata(f"ferplus:member{index}") == metadata
        assert pretrained.MEMBERS_KEY not in metadata and metadata["class_names"] == whole["class_names"]
        assert not any(key.startswith("member") for key in weights)
    assert metadata["provenance"] != pretrained.preset_network("ferplus:member1")[0]["provenance"]
    with pytest.raises(pretrained.PresetError, match=r"Preset 'ferplus' is an ensemble of 2 networks, and this needs "
                                                     r"one network: name one of ferplus:member1, ferplus:member2"):
        pretrained.preset_network("ferplus")
    assert pretrained.preset_network("fer2013")[0] == pretrained.metadata("fer2013")


@pytest.mark.parametrize("model", ["ferplus", "ferplus:member1"])
def test_predict_py_labels_a_photo_with_the_ferplus_preset(model):
    process = subprocess.run([sys.executable, "predict.py", "--model", model, ASTRONAUT], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-2000:]
    (line,) = process.stdout.splitlines()
    face = json.loads(line)
    assert len(face["probabilities"]) == 8 and "Contempt" in face["probabilities"]
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)


def test_the_shipped_model_loads_on_jax_with_the_same_outputs(tmp_path, shipped):
    run_on_jax(
        """
        import numpy as np
        import keras_fer
        model = keras_fer.pretrained.load("fer2013")
        np.save("jax_predictions.npy", model.predict(np.load("faces.npy"), verbose=0))
        """,
        tmp_path,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "jax_predictions.npy"), shipped.predict(FACES, verbose=0), atol=CROSS_BACKEND_ATOL
    )


def test_a_preset_converted_where_the_cache_cannot_be_written_is_kept_for_the_process_with_a_warning(
        tmp_path, monkeypatch):
    from keras_fer import conversion

    # The conversion itself is export.py's to test; here only where its bytes go matters.
    monkeypatch.setattr(conversion, "export_saved_model", lambda model, names, directory: directory)
    monkeypatch.setattr(conversion, "convert_tflite", lambda saved_model, quantization, names: b"flatbuffer")
    (tmp_path / "a_file").write_text("not a directory")
    monkeypatch.setenv("KERAS_FER_CACHE", str(tmp_path / "a_file" / "cache"))
    with pytest.warns(UserWarning, match=r"Cannot keep the converted preset in .*a_file/cache .*Set KERAS_FER_CACHE"):
        path = pretrained.tflite_file("fer2013", "dynamic")
    assert path.read_bytes() == b"flatbuffer" and tmp_path not in path.parents
    assert path.name.startswith("fer2013-") and path.name.endswith("-dynamic.tflite")
    monkeypatch.setenv("KERAS_FER_CACHE", str(tmp_path / "cache"))
    kept = pretrained.tflite_file("fer2013", "dynamic")  # a writable cache keeps it, silently
    assert kept.parent == tmp_path / "cache" and kept.read_bytes() == b"flatbuffer"


def test_a_plain_pip_install_ships_the_model_file(tmp_path):
    # The wheel is what `pip install .` installs: the preset must be inside it, not only in the checkout.
    # Built from a copy, so that the build leaves nothing in the repository.
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "keras_fer", source / "keras_fer", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("keras_fer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in pretrained.available():
            info = archive.getinfo(f"keras_fer/presets/{pretrained.PRESETS[name]['file']}")
            assert info.file_size == pretrained.preset_path(name).stat().st_size


@pytest.mark.skipif(not SHARED_CSV.exists(), reason="needs the real FER2013 file in ../shared")
def test_the_shipped_model_passes_the_int8_export_check_on_every_publictest_face(tmp_path):
    """export.py's int8 path on the model trained on real faces, checked on all 3,589 PublicTest faces.

    A model fitted to synthetic faces hid an int8 failure that real faces exposed (82.6%
    agreement on an earlier real-FER2013 model). A model trained only a few steps on real faces
    cannot show it either: its probabilities are near-uniform (1.6% of faces with a top-two
    margin of 0.2), and int8's uint8 output ties most of them, so its agreement measures ties,
    not quantization error (62% measured). The shipped model is the real-face model users export.
    Measured here: 98.50% top-1 agreement, every face with a top-two margin of 0.2 or more kept,
    accuracy 0.08 points higher. With the converter's min-max ranges instead of
    `keras_fer.quantization`'s it was 97.58%. Asserted: the 98% agreement that issue #13 set as
    the goal, every confident face kept, and at most 0.5 points of PublicTest accuracy lost.
    """
    from keras_fer.export import MIN_TOP1_AGREEMENT, export

    report = export("fer2013", tmp_path, "tflite", ["int8"], representative_data=str(SHARED_CSV),
                    parity_split="PublicTest", parity_samples=4000)
    recorded = pretrained.metadata("fer2013")["provenance"]["shipped_validation"]
    assert report["parity_data"]["images"] == 3589
    assert report["parity_data"]["keras_accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    (int8,) = report["artifacts"]
    assert int8["passed"] and int8["top1_agreement"] >= INT8_AGREEMENT_GOAL > MIN_TOP1_AGREEMENT["int8"], int8
    assert int8["top1_agreement_confident"] == 1.0, int8
    assert int8["accuracy_change_points"] >= -0.5, int8


@pytest.mark.skipif(not SHARED_FERPLUS.exists(), reason="needs the real FER2013 and FERPlus files in ../shared")
def test_the_ferplus_preset_exports_to_int8_calibrated_on_its_own_training_faces(tmp_path):
    """The FERPlus preset's int8 export reads Training faces in its label mode (ferplus8) for calibration.

    That read needs the FERPlus vote file as much as the parity read does; it once lacked it and
    refused every FERPlus model's int8 export.
    """
    from keras_fer.export import export

    report = export("ferplus", tmp_path, "tflite", ["int8"], representative_data=str(SHARED_CSV),
                    ferplus_path=str(SHARED_FERPLUS), parity_split="PublicTest", parity_samples=4000,
                    calibration_samples=200)
    recorded = pretrained.metadata("ferplus")["provenance"]["shipped_validation"]
    assert report["parity_data"]["images"] == 3396
    assert report["parity_data"]["keras_accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    (int8,) = report["artifacts"]
    assert int8["passed"] and int8["top1_agreement"] >= INT8_AGREEMENT_GOAL, int8
    assert int8["accuracy_change_points"] >= -0.5, int8
