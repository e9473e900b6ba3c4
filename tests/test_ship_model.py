"""tools/ship_model.py: a candidate saved as .keras is the very model its preset file holds; a bad path and a
folder-trained run are refused."""

import json

import numpy as np
import pytest

from keras_fer import config as config_lib
from keras_fer import pretrained
from keras_fer.classifiers import load_classifier
from keras_fer.data import synthetic
from keras_fer.models import build_model
from keras_fer.training import model_build_arguments
from tools.ship_model import main


@pytest.fixture
def finished_run(tmp_path):
    """A run directory as training leaves it, with a small untrained network and a synthetic FER2013 CSV."""
    csv = tmp_path / "fer2013.csv"
    synthetic.write_synthetic_fer2013(csv, {"Training": 1, "PublicTest": 3, "PrivateTest": 1}, seed=4)
    run = tmp_path / "run"
    run.mkdir()
    config = config_lib.load_config(None, ["model.input_size=32", "model.width=4", "model.use_masks=false"])
    (run / "config.yaml").write_text(config_lib.to_yaml(config))
    build_model(**model_build_arguments(config, 7)).save(run / "best.keras")
    (run / "command.txt").write_text(f"# start\npython train.py --data {csv} --output-dir {run}\n")
    (run / "metrics.json").write_text(json.dumps({
        "data": {"path": str(csv)}, "validation": {"split": "PublicTest", "accuracy": 0.2, "macro_f1": 0.1},
        "code_version": "0123456789abcdef", "seed": 1, "best_epoch": 1, "epochs_run": 1, "wall_time_seconds": 9.0}))
    return run


def test_the_keras_output_is_the_model_the_preset_file_holds(finished_run, tmp_path):
    preset_file, keras_file = tmp_path / "candidate.npz", tmp_path / "candidate" / "model.keras"
    main([str(finished_run), "fer2013", "--output", str(preset_file), "--keras-output", str(keras_file)])
    faces, _ = synthetic.synthetic_faces(16, seed=5)
    from_keras_file = load_classifier(str(keras_file)).classify(faces)
    from_preset_file = np.asarray(pretrained.load_file(preset_file).predict(faces.astype("float32"), verbose=0))
    np.testing.assert_allclose(from_keras_file, from_preset_file, atol=1e-6)
    # An ensemble of the run's network and the FER2013 preset: not the preset alone.
    alone = load_classifier("fer2013").classify(faces)
    assert np.abs(from_keras_file - alone).max() > 1e-3


def test_a_keras_output_that_is_not_a_keras_file_is_refused_before_anything_is_written(finished_run, tmp_path,
                                                                                      capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(finished_run), "--output", str(tmp_path / "x.npz"), "--keras-output", str(tmp_path / "x.h5")])
    assert exit_info.value.code == 2
    assert f"Received: --keras-output {tmp_path / 'x.h5'}" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_a_run_trained_on_an_image_folder_is_refused_by_its_config(finished_run, tmp_path):
    config = config_lib.load_config(finished_run / "config.yaml", [f"data.source={tmp_path}", "data.labels=folders"])
    (finished_run / "config.yaml").write_text(config_lib.to_yaml(config))
    with pytest.raises(SystemExit) as exit_info:
        main([str(finished_run), "--output", str(tmp_path / "x.npz")])
    assert f"{finished_run / 'config.yaml'}: data.labels is 'folders'" in str(exit_info.value.code)
    assert not (tmp_path / "x.npz").exists()
