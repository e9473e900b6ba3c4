"""benchmarks/model_cost.py: what it counts as a model's size, how it refuses a missing model, one real measurement."""

import os

import pytest

from benchmarks.common import DATA_FILE
from benchmarks.model_cost import main, measure_model, model_size
from keras_fer import pretrained


def test_size_is_a_presets_whole_file_for_it_or_a_member_and_every_file_of_a_directory(tmp_path):
    ferplus = os.path.getsize(pretrained.preset_path("ferplus"))
    assert model_size("ferplus") == model_size("ferplus:member1") == ferplus
    saved_model = tmp_path / "saved_model"
    (saved_model / "variables").mkdir(parents=True)
    (saved_model / "saved_model.pb").write_bytes(b"x" * 10)
    (saved_model / "variables" / "variables.data-00000-of-00001").write_bytes(b"y" * 32)
    assert model_size(str(saved_model)) == 42


def test_a_model_that_is_neither_a_preset_nor_a_file_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fer2013", str(tmp_path / "missing.keras")])
    assert exit_info.value.code == 2
    assert f"no such preset or model file: {tmp_path / 'missing.keras'}" in capsys.readouterr().err


@pytest.mark.skipif(not DATA_FILE.exists(), reason="needs the real FER2013 file in ../shared")
def test_a_measurement_times_the_classifier_and_the_photo_path_on_real_faces():
    result = measure_model({"model": "fer2013", "frames": 2, "calls": [1, 3, 0, 1]})
    assert result["size_bytes"] == os.path.getsize(pretrained.preset_path("fer2013"))
    assert result["latency_batch_1"]["runs"] == 3 and result["throughput"]["runs"] == 1
    assert result["photo_path"]["runs"] == 2 and result["photo_path"]["frames_with_a_face_found"] == 2
    # A frame is detection, alignment and four framing views classified: more than one face's call.
    assert 0 < result["latency_batch_1"]["median_ms"] < result["photo_path"]["median_ms"]
