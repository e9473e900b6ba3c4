"""Backends and devices: which backend trains, the `tf.distribute` strategy, multi-worker adaptation.

TensorFlow is imported only inside the functions that need it, so that other backends (JAX)
train without it.
"""

import json
import os

import keras

def backend_name():
    return keras.backend.backend()


def uses_tensorflow():
    return backend_name() == "tensorflow"


def thread_settings():
    """The threads the backend computes with, as command.txt records them beside the load."""
    if not uses_tensorflow():
        return f"{backend_name()} backend threads: its defaults (XLA_FLAGS, when set, is on the command line)"
    import tensorflow as tf

    def described(count):
        return f"{count}" if count else "0 (TensorFlow's default: one per core)"

    return (f"TensorFlow threads: intra-op {described(tf.config.threading.get_intra_op_parallelism_threads())}, "
            f"inter-op {described(tf.config.threading.get_inter_op_parallelism_threads())}")


def make_strategy(name):
    """The `tf.distribute` strategy named in `runtime.strategy`; None on other backends.

    `mirrored` replicates over every local GPU, or over every local logical CPU device
    when there is no GPU (so that it can be tried on a CPU split into logical devices).
    """
    if not uses_tensorflow():
        if name != "default":
            print(f"Notice: runtime.strategy={name} needs the TensorFlow backend; training on one device.")
        return None
    import tensorflow as tf

    if name == "multi_worker":  # before anything else initializes TensorFlow's runtime
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0].name)
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def is_chief():
    """Whether this process writes the run directory (always, except non-chief TF_CONFIG workers)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task")
    if not task:
        return True
    if "chief" in tf_config.get("cluster", {}):
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def adapt_to_multi_worker(model, element_spec):
    """Lets `model.fit` and `model.evaluate` run under `MultiWorkerMirroredStrategy`.

    Keras 3.15's TensorFlow trainer fails there in two places, with one worker per machine:
    - before the first step it builds the metrics and optimizer from a first batch, reduced over
      the workers with `strategy.reduce("MEAN", batch, axis=None)`, which refuses a tuple of
      per-replica tensors ("Attempt to convert a value (PerReplica:{...})"). Here they are built
      from the dataset's element spec instead, which needs no data;
    - every step's logs are averaged over the workers with `strategy.reduce("MEAN", value,
      axis=0)`, which needs an axis 0 that a scalar metric lacks. The steps here return each
      log with shape (1,), and the average over the workers is a scalar again.

    A one-worker cluster takes neither path, and its model is left as it is. Only this model
    object changes: what it saves, and every other strategy, are untouched.

    Args:
        model: a compiled `keras.Model`, created in the strategy's scope.
        element_spec: the training dataset's `element_spec`, the shapes and dtypes of a batch.
    """
    import tensorflow as tf

    # Keras' own test for the multi-worker reduction (trainer._collective_all_reduce_multi_worker).
    if not model.distribute_strategy.extended._in_multi_worker_mode():
        return

    def build_from_spec(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=element_spec)

    def with_batch_axis(step):
        def step_with_batch_axis(data):
            return {name: tf.reshape(value, (1,)) for name, value in step(data).items()}

        return step_with_batch_axis

    model._maybe_symbolic_build = build_from_spec
    model.train_step = with_batch_axis(model.train_step)
    model.test_step = with_batch_axis(model.test_step)
