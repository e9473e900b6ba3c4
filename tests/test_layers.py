import json
import os
import subprocess
import sys

import numpy as np
import pytest
import keras

from keras_fer.layers import (
    ECA,
    AverageViews,
    BasicBlock,
    BatchNormalization,
    ECAUNetMask,
    FaceAugmentation,
    MirrorViews,
    ResizeImages,
    bilinear_sample,
    eca_kernel_size,
)


@pytest.mark.parametrize(
    "channels, kernel", [(64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)]
)
def test_eca_kernel_size_matches_the_spec(channels, kernel):
    assert eca_kernel_size(channels) == kernel
    layer = ECA()
    layer.build((None, 4, 4, channels))
    assert layer.kernel_size == kernel


def test_eca_kernel_size_follows_gamma_and_b():
    # t = int(|(log2(64) + 3) / 3|) = 3, odd; and with gamma 1: int(6 + 1) = 7.
    assert eca_kernel_size(64, gamma=3, b=3) == 3
    assert eca_kernel_size(64, gamma=1, b=1) == 7


def test_eca_computes_channel_attention_from_pooled_channels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 16)).astype("float32")
    layer = ECA()
    out = keras.ops.convert_to_numpy(layer(x))
    kernel = keras.ops.convert_to_numpy(layer.channel_conv.kernel)[:, 0, 0]  # (k,)
    k = layer.kernel_size
    pooled = np.pad(x.mean(axis=(1, 2)), ((0, 0), (k // 2, k // 2)))
    conv = np.stack([pooled[:, c : c + k] @ kernel for c in range(16)], axis=1)
    expected = x / (1.0 + np.exp(-conv))[:, None, None, :]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_basic_block_projects_only_when_the_shape_changes():
    identity = BasicBlock(8)
    identity.build((None, 8, 8, 8))
    projected = BasicBlock(16, stride=2)
    projected.build((None, 8, 8, 8))
    # 3x3 convs have no bias; each BatchNormalization holds 4 * C values (2 trained, 2 statistics).
    assert identity.count_params() == 9 * 8 * 8 * 2 + 4 * 8 * 2
    assert projected.count_params() == 9 * 8 * 16 + 9 * 16 * 16 + 4 * 16 * 2 + 8 * 16 + 4 * 16
    assert tuple(projected.compute_output_shape((None, 8, 8, 8))) == (None, 4, 4, 16)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_mask_keeps_the_input_shape_and_sums_to_one_over_channels(depth):
    x = np.random.default_rng(depth).normal(size=(2, 16, 16, 4)).astype("float32")
    mask = ECAUNetMask(depth)
    out = keras.ops.convert_to_numpy(mask(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert len(mask.encoder_blocks) == depth and len(mask.decoder_blocks) == depth - 1
    # Encoder block i ends at C * 2**i channels; ECA after each one.
    assert [block.filters for block in mask.encoder_blocks] == [4 * 2**i for i in range(1, depth + 1)]
    assert len(mask.encoder_ecas) == depth


def test_mask_sigmoid_activation_gives_independent_gates():
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(ECAUNetMask(2, activation="sigmoid")(x))
    assert ((out > 0) & (out < 1)).all()
    assert not np.allclose(out.sum(axis=-1), 1.0)


def test_mask_without_eca_drops_exactly_the_eca_kernels():
    with_eca = ECAUNetMask(3)
    with_eca.build((None, 8, 8, 16))
    without = ECAUNetMask(3, use_eca=False)
    without.build((None, 8, 8, 16))
    eca_weights = sum(eca_kernel_size(16 * 2**i) for i in range(1, 4))
    assert with_eca.count_params() - without.count_params() == eca_weights
    assert without.encoder_ecas == []


@pytest.mark.parametrize("depth, size", [(4, 20), (3, 14), (2, 7)])
def test_mask_rejects_sizes_the_depth_cannot_pool(depth, size):
    mask = ECAUNetMask(depth, name="stage_mask")
    with pytest.raises(ValueError, match=rf"depth {depth}.*{size}x{size}"):
        mask.build((None, size, size, 8))


@pytest.mark.parametrize("width, channels", [(1.0, [16, 32, 64]), (0.5, [8, 16, 32]), (0.25, [4, 8, 16])])
def test_mask_width_scales_every_level_but_keeps_the_output(width, channels):
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype("float32")
    mask = ECAUNetMask(3, width=width)
    out = keras.ops.convert_to_numpy(mask(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert [block.filters for block in mask.encoder_blocks] == channels
    assert [block.filters for block in mask.decoder_blocks] == channels[1::-1]
    assert [up.filters for up in mask.decoder_ups] == channels[1::-1]
    assert mask.head.filters == 8
    assert ECAUNetMask.from_config(mask.get_config()).width == width


def test_mask_rejects_bad_arguments_quoting_them():
    with pytest.raises(ValueError, match="depth=0"):
        ECAUNetMask(0)
    with pytest.raises(ValueError, match="width=0"):
        ECAUNetMask(2, width=0)
    with pytest.raises(ValueError, match="activation='relu'"):
        ECAUNetMask(2, activation="relu")


def test_bilinear_sample_interpolates_and_mirrors_at_the_border():
    images = np.random.default_rng(6).uniform(size=(2, 5, 4, 3)).astype("float32")
    rows = np.broadcast_to(np.arange(5, dtype="float32")[None, :, None, None], (2, 5, 4, 1))
    cols = np.broadcast_to(np.arange(4, dtype="float32")[None, None, :, None], (2, 5, 4, 1))
    sample = lambda r, c: keras.ops.convert_to_numpy(bilinear_sample(images, r, c))
    np.testing.assert_allclose(sample(rows, cols), images, atol=1e-6)
    halfway = (images[:, :, :-1] + images[:, :, 1:]) / 2
    np.testing.assert_allclose(sample(rows, cols + 0.5)[:, :, :-1], halfway, atol=1e-6)
    # Column -1 mirrors to column 1, and column 4 (one past the end) to column 2.
    np.testing.assert_allclose(sample(rows, cols - 1.0)[:, :, 0], images[:, :, 1], atol=1e-6)
    np.testing.assert_allclose(sample(rows, cols + 1.0)[:, :, 3], images[:, :, 2], atol=1e-6)


def test_face_augmentation_flip_mirrors_about_half_the_images():
    x = np.random.default_rng(5).uniform(size=(64, 12, 12, 2)).astype("float32")
    layer = FaceAugmentation(flip=True, shift=0.0, rotation_degrees=0.0, zoom=0.0, seed=4)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-5) for o, i in zip(out, x)]
    unchanged = [np.allclose(o, i, atol=1e-5) for o, i in zip(out, x)]
    assert all(m != u for m, u in zip(mirrored, unchanged))
    assert 16 <= sum(mirrored) <= 48


def test_face_augmentation_is_random_in_training_only():
    x = np.random.default_rng(2).uniform(size=(4, 16, 16, 1)).astype("float32")
    layer = FaceAugmentation(seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    first = keras.ops.convert_to_numpy(layer(x, training=True))
    second = keras.ops.convert_to_numpy(layer(x, training=True))
    assert not np.allclose(first, x) and not np.allclose(first, second)


def test_mirror_views_appends_mirror_images_and_average_views_folds_them_back():
    images = np.arange(2 * 3 * 4 * 1, dtype="float32").reshape(2, 3, 4, 1)
    views = keras.ops.convert_to_numpy(MirrorViews()(images))
    np.testing.assert_array_equal(views, np.concatenate([images, images[:, :, ::-1]]))
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4], [0.4, 0.6], [1.0, 0.0]], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(AverageViews()(probabilities)), [[0.3, 0.7], [0.8, 0.2]])
    assert MirrorViews().compute_output_shape((None, 3, 4, 1)) == (None, 3, 4, 1)
    assert AverageViews().compute_output_shape((8, 7)) == (4, 7)


@pytest.mark.parametrize(
    "layer",
    [ECA(gamma=3, b=2), BatchNormalization(momentum=0.8), BasicBlock(8, stride=2), ECAUNetMask(2, use_eca=False, activation="sigmoid"),
     FaceAugmentation(flip=False, shift=0.05, rotation_degrees=5.0, zoom=0.0, seed=1), ResizeImages(32),
     MirrorViews(), AverageViews()],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_serialize_by_registration(layer):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_batch_normalization_trains_exactly_like_keras(policy):
    # On TensorFlow the training call is one fused kernel; it must compute Keras' function:
    # the same outputs, gradients and moving statistics (biased variance), and the same inference.
    import tensorflow as tf

    faces = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (6, 5, 5, 8)).astype("float32"))
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=8).astype("float32") for _ in range(3)] + [rng.uniform(0.5, 2.0, 8).astype("float32")]
    results = []
    for layer in (keras.layers.BatchNormalization(momentum=0.7, epsilon=1e-5, dtype=policy),
                  BatchNormalization(momentum=0.7, epsilon=1e-5, dtype=policy)):
        layer.build(faces.shape)
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            tape.watch(faces)
            outputs = tf.cast(layer(faces, training=True), "float32")
            loss = tf.reduce_sum(outputs**2 * tf.range(8, dtype="float32"))
        gradients = tape.gradient(loss, [faces] + layer.trainable_weights)
        results.append((outputs, gradients, [v.numpy() for v in layer.non_trainable_weights],
                        tf.cast(layer(faces), "float32")))
    (keras_out, keras_grads, keras_stats, keras_inference), (out, grads, stats, inference) = results
    tolerance = 1e-5 if policy == "float32" else 1e-2
    np.testing.assert_allclose(out, keras_out, atol=tolerance)
    for gradient, keras_gradient in zip(grads, keras_grads):
        np.testing.assert_allclose(gradient, keras_gradient, rtol=tolerance, atol=tolerance * 100)
    for stat, keras_stat in zip(stats, keras_stats):
        np.testing.assert_allclose(stat, keras_stat, rtol=1e-6)
    assert not np.allclose(stats[1], weights[3])  # the moving variance did move
    np.testing.assert_allclose(inference, keras_inference, atol=tolerance)


TWO_REPLICAS_DRIVER = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_fer.layers import BatchNormalization

# Two halves from different distributions: each replica's own statistics differ a lot.
rng = np.random.default_rng(0)
faces = np.concatenate([rng.normal(0.0, 1.0, (4, 3, 3, 5)), rng.normal(4.0, 3.0, (4, 3, 3, 5))]).astype("float32")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = BatchNormalization(momentum=0.5)
    layer.build(faces.shape)
halves = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(faces).batch(8))))
outputs = strategy.run(lambda x: layer(x, training=True), args=(halves,))
# What Keras computes for each half alone.
references = [keras.layers.BatchNormalization(momentum=0.5) for _ in range(2)]
expected = [reference(faces[4 * i:4 * i + 4], training=True).numpy() for i, reference in enumerate(references)]
json.dump({
    "outputs": np.concatenate([o.numpy() for o in strategy.experimental_local_results(outputs)]).tolist(),
    "expected": np.concatenate(expected).tolist(),
    "moving": [[v.numpy().tolist() for v in strategy.experimental_local_results(w.value)]
               for w in layer.non_trainable_weights],
    "expected_moving": [np.mean([r.non_trainable_weights[i].numpy() for r in references], axis=0).tolist()
                        for i in range(2)],
}, sys.stdout)
"""


def test_batch_normalization_keeps_the_replicas_moving_statistics_equal():
    # Each replica normalizes its own half, as Keras does, and both replicas must end with the
    # same moving statistics, the mean of the halves' updates (Keras' own layer keeps each its own).
    process = subprocess.run([sys.executable, "-c", TWO_REPLICAS_DRIVER], capture_output=True, text=True,
                             timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["outputs"], result["expected"], atol=1e-4)
    for replicas, expected in zip(result["moving"], result["expected_moving"]):
        assert len(replicas) == 2
        for replica in replicas:
            np.testing.assert_allclose(replica, expected, rtol=1e-5)
