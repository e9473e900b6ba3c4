"""The same model on the JAX backend, and `.keras` files that move between backends."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_fer.models import build_model

FACES = np.random.default_rng(0).integers(0, 256, size=(8, 48, 48, 1), dtype="uint8")
# Different convolution kernels on the two backends: agreement to float32 round-off.
CROSS_BACKEND_ATOL = 1e-4


def run_on_jax(script, tmp_path):
    """Runs `script` in a fresh interpreter with KERAS_BACKEND=jax; returns its stdout."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    np.save(tmp_path / "faces.npy", FACES)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_jax_trains_one_xla_step_and_its_file_loads_on_tensorflow(tmp_path):
    out = run_on_jax(
        """
        import keras, numpy as np
        from keras_fer.models import build_model
        faces = np.load("faces.npy")
        model = build_model(input_size=64, width=4, mask_activation="sigmoid")
        # A small step: one of 0.05 left the inference-mode batch norms (moving statistics one
        # step from their initial values) so far from normalizing that the pooled features reached
        # thousands, the softmax saturated, and round-off grew with them (CI saw 2e-4).
        model.compile(optimizer=keras.optimizers.SGD(0.002, momentum=0.9),
                      loss="sparse_categorical_crossentropy", jit_compile=True)
        before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        loss = model.train_on_batch(faces, np.arange(8) % 7)
        moved = sum(not np.array_equal(b, keras.ops.convert_to_numpy(w))
                    for b, w in zip(before, model.trainable_weights))
        model.save("jax.keras")
        np.savez("jax_weights.npz", *model.get_weights())
        np.save("jax_predictions.npy", model.predict(faces, verbose=0))
        print(keras.backend.backend(), model.jit_compile, float(loss), moved, len(before))
        """,
        tmp_path,
    )
    backend, jit_compile, loss, moved, total = out.split()[-5:]
    assert (backend, jit_compile) == ("jax", "True")
    assert np.isfinite(float(loss)) and moved == total
    restored = keras.saving.load_model(tmp_path / "jax.keras")
    saved = np.load(tmp_path / "jax_weights.npz")
    for index, weight in enumerate(restored.get_weights()):
        np.testing.assert_array_equal(weight, saved[f"arr_{index}"])
    np.testing.assert_allclose(
        restored.predict(FACES, verbose=0), np.load(tmp_path / "jax_predictions.npy"), atol=CROSS_BACKEND_ATOL
    )


def test_tensorflow_file_loads_on_jax_with_the_same_outputs(tmp_path):
    model = build_model(input_size=64, width=4, dropout=0.1)
    model(FACES, training=True)  # moves BN statistics off their defaults
    model.save(tmp_path / "tf.keras")
    run_on_jax(
        """
        import keras, numpy as np
        import keras_fer.models  # registers the custom layers
        model = keras.saving.load_model("tf.keras")
        np.save("jax_predictions.npy", model.predict(np.load("faces.npy"), verbose=0))
        """,
        tmp_path,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "jax_predictions.npy"), model.predict(FACES, verbose=0), atol=CROSS_BACKEND_ATOL
    )


@pytest.mark.parametrize("policy", ["mixed_bfloat16"])
def test_mixed_precision_keeps_probabilities_in_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_model(input_size=64, width=4)
        probabilities = model(FACES)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("stage1_mask").compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(probabilities.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probabilities).sum(axis=1), 1.0, rtol=1e-5)
