"""Fine-tuning (`training.init`, `training.freeze_epochs`): from the shipped preset to a folder of other classes.

Real FER2013 faces when ../shared is there, synthetic faces otherwise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from keras_fer import config as config_lib
from keras_fer import export as export_module
from keras_fer import pretrained, predict
from keras_fer.data import FERPLUS8_CLASS_NAMES, read_fer2013, synthetic_faces
from keras_fer.training import RunError, make_model
from keras_fer.training.initialization import FreezeBackbone, assign_initial_weights
from keras_fer.training.recipe import model_build_arguments

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CSV = REPO_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_public.csv.gz"
FINETUNE = REPO_ROOT / "configs" / "finetune.yaml"
# Folder names a user might have: a synonym, another case, and a class the preset lacks.
FOLDERS = {"happiness": 3, "SAD": 4, "pain": 6}
ASTRONAUT = os.path.join(os.path.dirname(pytest.importorskip("skimage.data").__file__), "astronaut.png")


def faces_by_class(per_class):
    """`per_class` Training faces of each FER2013 class: real ones from ../shared, else synthetic."""
    if SHARED_CSV.is_file():
        images, labels = read_fer2013(SHARED_CSV, usage="Training")
    else:
        images, labels = synthetic_faces(7 * per_class * 3, seed=0)
    return {label: images[np.flatnonzero(labels == label)[:per_class]] for label in range(7)}


def write_folder(root, per_class=48):
    """DIR/<folder>/*.png|jpg: gray 48-px PNGs and colour 96-px JPEGs, as a user's export might be."""
    faces = faces_by_class(per_class)
    for folder, label in FOLDERS.items():
        os.makedirs(root / folder)
        for index, face in enumerate(faces[label]):
            if index % 2:
                image = cv2.cvtColor(cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
                cv2.imwrite(str(root / folder / f"{index}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            else:
                cv2.imwrite(str(root / folder / f"{index}.png"), face)
    return root


def finetune_config(*overrides):
    return config_lib.load_config(FINETUNE, list(overrides))


def test_init_carries_every_weight_and_the_classifier_rows_of_shared_classes():
    config = finetune_config("data.labels=ferplus8")
    model = make_model(config, len(FERPLUS8_CLASS_NAMES))
    fresh_contempt = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)[:, -1].copy()
    line = assign_initial_weights(model, "fer2013", FERPLUS8_CLASS_NAMES, model_build_arguments(config, 8))
    assert "7 of 8 classes" in line and "new: Contempt" in line

    _, weights = pretrained.read_preset_file(pretrained.preset_path("fer2013"))
    stem = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(stem, weights["stem_conv/kernel"].astype("float32"))
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    # FERPlus-8 keeps FER2013's seven classes in FER2013's order, then Contempt.
    np.testing.assert_array_equal(kernel[:, :7], weights["predictions/kernel"].astype("float32"))
    np.testing.assert_array_equal(kernel[:, 7], fresh_contempt)


def test_init_maps_classifier_rows_by_class_name_not_position():
    config = finetune_config()
    run_classes = ("Sad", "Pain", "Happy")
    model = make_model(config, 3)
    assign_initial_weights(model, "fer2013", run_classes, model_build_arguments(config, 3))
    _, weights = pretrained.read_preset_file(pretrained.preset_path("fer2013"))
    bias = keras.ops.convert_to_numpy(model.get_layer("predictions").bias)
    source = weights["predictions/bias"].astype("float32")
    assert bias[0] == source[4] and bias[2] == source[3]  # Sad, Happy
    assert bias[1] == 0.0  # Pain: Keras' zero-initialized bias, a fresh row


def test_init_refuses_a_network_other_than_the_one_the_weights_were_trained_as():
    config = finetune_config("model.width=8")
    model = make_model(config, 7)
    with pytest.raises(RunError, match=r"model\.width is 16 there, 8 in this config"):
        assign_initial_weights(model, "fer2013", FERPLUS8_CLASS_NAMES[:7], model_build_arguments(config, 7))
    with pytest.raises(RunError, match="neither a preset"):
        assign_initial_weights(model, "no-such-preset", FERPLUS8_CLASS_NAMES[:7], model_build_arguments(config, 7))


def test_init_carries_the_weights_to_a_stem_of_another_stride_and_no_other_stem():
    """conv3x3_s2's weights run at stride 1 (configs/ferplus8_stride1.yaml); the 7x7 imagenet stem differs."""
    config = finetune_config("model.stem=conv3x3")
    model = make_model(config, 7)
    line = assign_initial_weights(model, "fer2013", FERPLUS8_CLASS_NAMES[:7], model_build_arguments(config, 7))
    assert "model.stem 'conv3x3_s2' -> 'conv3x3'" in line
    _, weights = pretrained.read_preset_file(pretrained.preset_path("fer2013"))
    stem = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(stem, weights["stem_conv/kernel"].astype("float32"))
    assert model.get_layer("stem_conv").output.shape[1:3] == (48, 48)

    config = finetune_config("model.stem=imagenet", "model.input_size=64")
    model = make_model(config, 7)
    with pytest.raises(RunError, match=r"model\.stem is 'conv3x3_s2' there, 'imagenet' in this config"):
        assign_initial_weights(model, "fer2013", FERPLUS8_CLASS_NAMES[:7], model_build_arguments(config, 7))


def test_init_from_the_ferplus_ensemble_starts_from_the_one_network_it_names():
    """`ferplus` averages a stride-2 and a stride-1 network: fine-tuning names one (`ferplus:member2`)."""
    config = finetune_config("model.stem=conv3x3")
    model = make_model(config, 8)
    build = model_build_arguments(config, 8)
    with pytest.raises(RunError, match=r"training.init 'ferplus': Preset 'ferplus' is an ensemble of 2 networks, and "
                                       r"this needs one network: name one of ferplus:member1, ferplus:member2"):
        assign_initial_weights(model, "ferplus", FERPLUS8_CLASS_NAMES, build)
    with pytest.raises(RunError, match=r"training.init 'ferplus:member9': Preset 'ferplus' has no network "
                                       r"'ferplus:member9'; name one of ferplus:member1, ferplus:member2"):
        assign_initial_weights(model, "ferplus:member9", FERPLUS8_CLASS_NAMES, build)
    line = assign_initial_weights(model, "ferplus:member2", FERPLUS8_CLASS_NAMES, build)
    assert line.startswith("Initialized from ferplus:member2") and "model.stem" not in line  # stride 1 as well
    _, weights = pretrained.read_preset_file(pretrained.preset_path("ferplus"))
    variables = {variable.path: variable for variable in model.weights}
    for path in ("stem_conv/kernel", "stage4_block3/bn2/moving_mean", "predictions/kernel"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variables[path]),
                                      weights[f"member2/{path}"].astype("float32"))
    with pytest.raises(RunError, match=r"training.init 'fer2013:member1': Preset 'fer2013' has no network "
                                       r"'fer2013:member1'; name one of fer2013\."):
        assign_initial_weights(model, "fer2013:member1", FERPLUS8_CLASS_NAMES, build)


def test_freeze_trains_the_classifier_alone_then_the_whole_network():
    """Epoch 1 moves only the classifier (batch-norm statistics included); epoch 2 moves everything."""
    config = finetune_config("model.augmentation=null")
    model = make_model(config, 3)
    assign_initial_weights(model, "fer2013", ("Happy", "Sad", "Pain"), model_build_arguments(config, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    faces = faces_by_class(16)
    images = np.concatenate([faces[3], faces[4], faces[6]])
    labels = np.repeat(np.arange(3), 16)

    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append({name: keras.ops.convert_to_numpy(getattr(self.model.get_layer(layer), attribute)).copy()
                              for name, (layer, attribute) in WATCHED.items()})

    WATCHED = {"stem": ("stem_conv", "kernel"), "bn_mean": ("stem_bn", "moving_mean"),
               "head": ("predictions", "kernel")}
    before = {name: keras.ops.convert_to_numpy(getattr(model.get_layer(layer), attribute)).copy()
              for name, (layer, attribute) in WATCHED.items()}
    model.fit(images, labels, batch_size=16, epochs=2, verbose=0, callbacks=[FreezeBackbone(1), Snapshot()])
    first, second = snapshots
    np.testing.assert_array_equal(first["stem"], before["stem"])
    np.testing.assert_array_equal(first["bn_mean"], before["bn_mean"])
    assert not np.array_equal(first["head"], before["head"])
    assert not np.array_equal(second["stem"], first["stem"])
    assert not np.array_equal(second["bn_mean"], first["bn_mean"])


def test_freeze_epochs_needs_starting_weights():
    with pytest.raises(config_lib.ConfigError, match="set training.init"):
        config_lib.load_config(FINETUNE, ["training.init=null"])


def test_finetune_from_fer2013_on_a_folder_with_a_new_class_exports_and_predicts(tmp_path, capsys):
    """The issue's path: other folder names, a class the preset lacks, then export and predict."""
    data = write_folder(tmp_path / "faces")
    run = tmp_path / "run"
    subprocess.run([
        sys.executable, "train.py", "--config", str(FINETUNE), "--data", str(data), "--init", "fer2013",
        "--output-dir", str(run), "--set", "data.class_map={pain: Pain}", "--set", "training.epochs=2",
        "--set", "training.batch_size=32", "--set", "training.early_stopping.patience=2",
    ], cwd=REPO_ROOT, check=True)
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "class_names.json").read_text()) == ["Happy", "Sad", "Pain"]
    assert metrics["data"]["class_names"] == ["Happy", "Sad", "Pain"]
    assert metrics["data"]["splits"] == {"Training": 129, "PublicTest": 15}  # a seeded 10% of each class
    # Happy and Sad start from the preset's rows: the model tells them apart from its first epoch.
    assert metrics["validation"]["accuracy"] > 0.5

    export_dir = tmp_path / "export"
    status = export_module.main(["--model", str(run / "best.keras"), "--output-dir", str(export_dir),
                                 "--format", "tflite", "--quantize", "dynamic", "--parity-split", "PublicTest",
                                 "--calibration-samples", "32", "--parity-samples", "15"])
    assert status == 0, capsys.readouterr().err
    parity = json.loads((export_dir / export_module.PARITY_REPORT).read_text())
    assert parity["class_names"] == ["Happy", "Sad", "Pain"]
    assert parity["parity_data"]["source"] == str(data)  # the run's own folder, not synthetic faces
    capsys.readouterr()

    tflite = next((export_dir / "tflite").glob("*_dynamic.tflite"))
    for model in (run / "best.keras", tflite):
        assert predict.main(["--model", str(model), ASTRONAUT]) == 0
        (face,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert list(face["probabilities"]) == ["Happy", "Sad", "Pain"]
        assert face["label"] in ("Happy", "Sad", "Pain")
