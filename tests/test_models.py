import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_fer.layers import ECA, ECAUNetMask, eca_kernel_size
from keras_fer.models import STAGE_BLOCKS, build_ensemble, build_model, network_count, stage_outputs

FACES = np.random.default_rng(0).integers(0, 256, size=(4, 48, 48, 1), dtype="uint8")


def small_model(**kwargs):
    options = dict(input_size=64, width=8)
    options.update(kwargs)
    return build_model(**options)


def stage_shapes(model):
    return [tuple(model.get_layer(name).output.shape[1:]) for name in stage_outputs(model)]


def test_paper_configuration_matches_the_spec(paper_model):
    assert paper_model.input_shape == (None, 48, 48, 1)
    assert paper_model.output_shape == (None, 7)
    assert stage_shapes(paper_model) == [(56, 56, 64), (28, 28, 128), (14, 14, 256), (7, 7, 512)]
    parameters = paper_model.count_params()
    print(f"paper configuration: {parameters:,} parameters")
    assert 130e6 <= parameters <= 146e6
    depths = [paper_model.get_layer(f"stage{i}_mask").depth for i in range(1, 5)]
    assert depths == [4, 3, 2, 1]
    # The first U-Net climbs 64 -> 128 -> 256 -> 512 -> 1024 channels, with ECA after each block.
    stage1 = paper_model.get_layer("stage1_mask")
    assert [block.filters for block in stage1.encoder_blocks] == [128, 256, 512, 1024]
    assert [eca.kernel_size for eca in stage1.encoder_ecas] == [5, 5, 5, 5]


def test_without_masks_it_is_a_plain_resnet34():
    model = build_model(use_masks=False)
    parameters = model.count_params()
    print(f"plain ResNet34: {parameters:,} parameters")
    assert 21.2e6 <= parameters <= 21.4e6
    assert not any(isinstance(layer, ECAUNetMask) for layer in model.layers)
    assert stage_outputs(model) == [f"stage{i + 1}_block{n}" for i, n in enumerate(STAGE_BLOCKS)]


def test_without_eca_only_the_eca_kernels_are_missing():
    with_eca, without = small_model(width=16), small_model(width=16, use_eca=False)
    eca_kernels = sum(
        eca_kernel_size(16 * 2**stage * 2**i)
        for stage, depth in enumerate((4, 3, 2, 1))
        for i in range(1, depth + 1)
    )
    assert with_eca.count_params() - without.count_params() == eca_kernels
    assert not any(
        isinstance(sub, ECA) for layer in without.layers for sub in layer._flatten_layers()
    )


@pytest.mark.parametrize("input_size, width", [(64, 16), (96, 16), (64, 4)])
def test_small_configurations_build_and_run(input_size, width):
    model = small_model(input_size=input_size, width=width)
    side = input_size // 4
    assert stage_shapes(model) == [
        (side // 2**i, side // 2**i, width * 2**i) for i in range(4)
    ]
    probabilities = keras.ops.convert_to_numpy(model(FACES))
    assert probabilities.shape == (4, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_uint8_and_float_faces_give_the_same_output():
    model = small_model()
    from_uint8 = keras.ops.convert_to_numpy(model(FACES))
    from_float = keras.ops.convert_to_numpy(model(FACES.astype("float32")))
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)


def test_layer_names_show_the_structure():
    model = small_model(num_classes=8, dropout=0.3)
    names = {layer.name for layer in model.layers}
    assert {"scale", "augment", "resize", "gray_to_rgb", "stem_conv", "stage3_block6", "stage2_mask",
            "stage2_fused", "avg_pool", "head_dropout", "predictions"} <= names
    assert model.output_shape == (None, 8)


def test_bare_network_takes_rgb_at_the_input_size():
    model = small_model(include_preprocessing=False)
    assert model.input_shape == (None, 64, 64, 3)
    assert not {"scale", "resize", "augment"} & {layer.name for layer in model.layers}


def test_input_size_the_masks_cannot_pool_is_refused_at_build():
    # 80 / 4 = 20 at stage 1, which a depth-4 U-Net cannot halve three times.
    with pytest.raises(ValueError, match=r"input_size` 80 gives stage 1 a side of 20 .*depth-4"):
        small_model(input_size=80)


@pytest.mark.parametrize(
    "kwargs, quoted",
    [
        (dict(width=0), "width=0"),
        (dict(mask_depths=(4, 3, 2)), "mask_depths=(4, 3, 2)"),
        (dict(mask_width=-0.5), "mask_width=-0.5"),
        (dict(image_shape=(48, 48, 2)), "image_shape=(48, 48, 2)"),
        (dict(augmentation={"blur": 1}), "blur"),
        (dict(dropout=1.5), "dropout=1.5"),
        (dict(flip_average=1), "flip_average=1"),
    ],
)
def test_bad_arguments_are_refused_quoting_the_value(kwargs, quoted):
    with pytest.raises(ValueError) as error:
        small_model(**kwargs)
    assert quoted in str(error.value)


def test_augmentation_changes_training_output_only():
    model = small_model(augmentation={"seed": 1})
    plain = small_model(augmentation=None)
    plain.set_weights(model.get_weights())
    inference = keras.ops.convert_to_numpy(model(FACES))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(model(FACES, training=False)))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(plain(FACES)), atol=1e-6)
    # Batch statistics make training mode deterministic for a fixed input without augmentation.
    plain_training = keras.ops.convert_to_numpy(plain(FACES, training=True))
    np.testing.assert_allclose(plain_training, keras.ops.convert_to_numpy(plain(FACES, training=True)), atol=1e-6)
    augmented = keras.ops.convert_to_numpy(model(FACES, training=True))
    assert np.abs(augmented - plain_training).max() > 1e-4


def test_flip_average_gives_the_mean_of_a_face_and_its_mirror_image(tmp_path):
    single = small_model(augmentation=None)
    single(FACES, training=True)  # moves BN statistics off their defaults
    averaged = small_model(augmentation=None, flip_average=True)
    assert [w.path for w in averaged.weights] == [w.path for w in single.weights]
    averaged.set_weights(single.get_weights())
    mirrored = FACES[:, :, ::-1]
    probabilities = keras.ops.convert_to_numpy(averaged(FACES))
    expected = (keras.ops.convert_to_numpy(single(FACES)) + keras.ops.convert_to_numpy(single(mirrored))) / 2
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    # Unlike the single view's, its answer cannot change when the face is mirrored.
    assert np.abs(keras.ops.convert_to_numpy(single(mirrored)) - keras.ops.convert_to_numpy(single(FACES))).max() > 1e-4
    np.testing.assert_allclose(keras.ops.convert_to_numpy(averaged(mirrored)), probabilities, atol=1e-6)
    averaged.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(FACES)), probabilities, atol=1e-6)


def test_an_ensemble_gives_the_mean_of_its_networks_probabilities_and_loads_back(tmp_path):
    # Members of different stems and sides, as the FERPlus preset's: each keeps its own preprocessing.
    coarse = small_model(input_size=48, stem="conv3x3_s2", augmentation=None, name="member1")
    fine = small_model(input_size=32, stem="conv3x3", width=4, augmentation=None, name="member2")
    for member in (coarse, fine):
        member(FACES, training=True)  # moves BN statistics off their defaults
    ensemble = build_ensemble([coarse, fine])
    assert ensemble.input_shape == (None, 48, 48, 1) and ensemble.output_shape == (None, 7)
    probabilities = keras.ops.convert_to_numpy(ensemble(FACES))
    coarse_probabilities, fine_probabilities = (keras.ops.convert_to_numpy(member(FACES)) for member in (coarse, fine))
    assert np.abs(coarse_probabilities - fine_probabilities).max() > 1e-3  # the mean is not one member's answer
    np.testing.assert_allclose(probabilities, (coarse_probabilities + fine_probabilities) / 2, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    restored = keras.saving.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(FACES)), probabilities, atol=1e-6)
    assert (network_count(restored), network_count(coarse)) == (2, 1)


@pytest.mark.parametrize("members, quoted", [
    (lambda: [small_model(width=4, name="member1")], "Received: 1 member(s)"),
    (lambda: [small_model(width=4), small_model(width=4)], "Received: member names ['keras_fer', 'keras_fer']"),
    (lambda: [small_model(width=4, name="a"), small_model(width=4, num_classes=8, name="b")], "(None, 8)"),
])
def test_an_ensemble_of_networks_that_cannot_be_averaged_is_refused_quoting_them(members, quoted):
    with pytest.raises(ValueError, match=re.escape(quoted)):
        build_ensemble(members())


def test_every_layer_allows_xla_compilation():
    # One layer with supports_jit=False silently turns jit_compile off for the whole model.
    model = small_model()
    assert [layer.name for layer in model._flatten_layers() if not layer.supports_jit] == []


def test_saved_model_file_loads_back_with_the_same_outputs(tmp_path):
    model = small_model(mask_activation="sigmoid", dropout=0.2)
    model(FACES, training=True)  # moves BN statistics off their defaults
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)  # no custom_objects: registration alone
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(FACES)), keras.ops.convert_to_numpy(model(FACES)), atol=1e-5
    )
    assert restored.get_layer("stage1_mask").activation == "sigmoid"


def test_one_training_step_reaches_every_mask_and_eca_weight():
    model = small_model(width=4, augmentation=None)
    # Eager: the same step without tracing the masked network's training graph (tens of seconds).
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy", run_eagerly=True
    )
    masks = [layer for layer in model.layers if isinstance(layer, ECAUNetMask)]
    assert len(masks) == 4
    watched = [weight for mask in masks for weight in mask.trainable_weights]
    ecas = [sub for mask in masks for sub in mask.encoder_ecas]
    assert len(ecas) == 4 + 3 + 2 + 1 and {eca.trainable_weights[0].path for eca in ecas} <= {w.path for w in watched}
    before = [keras.ops.convert_to_numpy(weight) for weight in watched]
    model.train_on_batch(FACES, np.array([0, 1, 2, 3]))
    # Plain SGD without weight decay moves a weight only where its gradient is non-zero.
    unchanged = [
        weight.path
        for weight, old in zip(watched, before)
        if np.array_equal(old, keras.ops.convert_to_numpy(weight))
    ]
    assert unchanged == []


def test_summary_command_prints_structure_and_size():
    result = subprocess.run(
        [sys.executable, "-m", "keras_fer.models", "--input-size", "64", "--width", "8", "--summary", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert "stage2_mask (ECAUNetMask)" in result.stdout
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["parameters"] == small_model().count_params()
    assert report["stage_outputs"]["stage4_fused"] == [2, 2, 64]
