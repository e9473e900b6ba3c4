"""Fine-tuning: a run that starts from trained weights (`training.init`) and may first freeze them.

`training.init` names a shipped preset (`fer2013`), one network of an ensemble preset
(`ferplus:member1`, `ferplus:member2`), or a trained `.keras` file. Its weights are assigned to
the run's freshly built network by Keras variable path, so the network (`model.*` of the config)
must be the one those weights were trained as; a difference is refused before any work, naming
the first one. Two differences keep every weight's shape and are allowed
(the run's log names them): the input size, and the stem's stride between `conv3x3_s2` and
`conv3x3`, whose same 3x3 filters then run on maps twice as fine or twice as coarse. The
classifier is the one layer that may differ: its rows for classes that the source also has
(matched by name) are carried over, and the rows of new classes keep their fresh initialization.
A source class the run lacks is simply dropped.

`training.freeze_epochs` then trains only the classifier for the first epochs, every other layer
frozen (batch normalization in inference mode, as Keras does for a non-trainable layer), so that
a new classifier settles before its gradients reach the trained features.
"""

from pathlib import Path

import keras
import numpy as np

from keras_fer.models import STEM_KERNELS
from keras_fer.training.run_directory import RunError

# The classifier: the one layer whose shape may follow the run's classes.
CLASSIFIER = "predictions"
# Build arguments that only change inference (the mirror average a preset ships with).
INFERENCE_ONLY = ("flip_average",)


def read_initial_weights(init):
    """The weights, class names and (for presets) build arguments that `training.init` names.

    Args:
        init: a preset name (`keras_fer.pretrained.available()`), `PRESET:memberN` for
            network N of an ensemble preset, or a `.keras` file.
    Returns:
        `(weights, class_names, build)`: {variable path: array}, the source's class names in
        output order, and the source's `build_model` arguments (None for a `.keras` file,
        whose variables are compared by shape instead).
    Raises:
        RunError: an unknown preset, a missing file or one that does not load.

    Example:
    >>> weights, class_names, build = read_initial_weights("fer2013")
    >>> class_names[3], weights["predictions/kernel"].shape
    ('Happy', (128, 7))
    """
    from keras_fer import pretrained

    if pretrained.names_a_preset(init):
        try:
            metadata, build, weights = pretrained.preset_network(init)
        except pretrained.PresetError as error:
            raise RunError(f"training.init {init!r}: {error}") from None
        return weights, tuple(metadata["class_names"]), build
    if not Path(init).is_file():
        raise RunError(f"training.init {init!r}: neither a preset ({', '.join(pretrained.available())}) "
                       "nor an existing .keras file")
    from keras_fer.classifiers import resolve_class_names
    from keras_fer.evaluation import load_model_file

    try:
        model = load_model_file(init)
    except ValueError as error:
        raise RunError(f"training.init: {error}") from None
    weights = {variable.path: keras.ops.convert_to_numpy(variable) for variable in model.weights}
    class_names = resolve_class_names(init, model.output_shape[-1])
    return weights, tuple(class_names), None


def same_weight_shapes(key, source_value, run_value):
    """Whether a difference in `build_model` argument `key` leaves every weight's shape unchanged."""
    if key == "stem":
        return STEM_KERNELS[source_value] == STEM_KERNELS[run_value]
    # Global pooling before the classifier: no weight depends on the input's side.
    return key == "input_size"


def check_same_network(build, run_build, init):
    """Checks that `init`'s weights fit the run's network; returns the allowed differences.

    Returns:
        A list of "model.KEY A -> B" strings, one per difference that keeps the weights' shapes
        (see `same_weight_shapes`), for the run's log.
    Raises:
        RunError: naming the first `build_model` argument in which the run's network differs
            otherwise.
    """
    changes = []
    for key in sorted(set(build) | set(run_build)):
        if key in INFERENCE_ONLY or key == "num_classes" or build.get(key) == run_build.get(key):
            continue
        if same_weight_shapes(key, build.get(key), run_build.get(key)):
            changes.append(f"model.{key} {build.get(key)!r} -> {run_build.get(key)!r}")
        else:
            raise RunError(
                f"training.init {init!r} was trained as another network: model.{key} is {build.get(key)!r} there, "
                f"{run_build.get(key)!r} in this config; set model.{key}: {build.get(key)!r}"
            )
    return changes


def classifier_rows(source_classes, run_classes):
    """`(run rows, source rows)`: the classifier rows of the classes both have, matched by name."""
    shared = [name for name in run_classes if name in source_classes]
    return [run_classes.index(name) for name in shared], [source_classes.index(name) for name in shared]


def assign_initial_weights(model, init, run_classes, run_build):
    """Assigns `training.init`'s weights to `model` (the run's network, freshly built).

    Args:
        model: the run's network, as `recipe.make_model` built it.
        init: `training.init`.
        run_classes: the run's class names in output order.
        run_build: the run's `build_model` arguments (`recipe.model_build_arguments`).
    Returns:
        A line saying what was carried over, for the run's log.
    Raises:
        RunError: another network (see `check_same_network`), or a variable without a
            counterpart of the same shape.
    """
    weights, source_classes, build = read_initial_weights(init)
    changes = check_same_network(build, run_build, init) if build is not None else []
    run_rows, source_rows = classifier_rows(source_classes, list(run_classes))
    for variable in model.weights:
        path = variable.path
        if path.startswith(CLASSIFIER + "/"):
            value = keras.ops.convert_to_numpy(variable).copy()
            value[..., run_rows] = weights[path][..., source_rows]
        elif path not in weights:
            raise RunError(f"training.init {init!r} has no weight {path}: it was trained as another network")
        else:
            value = weights[path]
            if tuple(value.shape) != tuple(variable.shape):
                raise RunError(f"training.init {init!r}: weight {path} has shape {tuple(value.shape)} there, "
                               f"{tuple(variable.shape)} in this network; it was trained as another network")
        variable.assign(np.asarray(value).astype(variable.dtype))
    new = [name for name in run_classes if name not in source_classes]
    return (f"Initialized from {init}: every layer, and the classifier's rows of {len(run_rows)} of "
            f"{len(run_classes)} classes" + (f" (new: {', '.join(new)})" if new else "")
            + (f"; the same weights in a changed network: {', '.join(changes)}" if changes else ""))


class FreezeBackbone(keras.callbacks.Callback):
    """Trains only the classifier in the first `epochs` epochs, then the whole network.

    The optimizer must have been built on every variable (as `recipe.compile_model` does),
    so that it holds state for the layers that join later. Changing which layers train
    retraces the training step once; a resumed run takes the state of the epoch it resumes at.
    """

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        backbone = [layer for layer in self.model.layers if layer.name != CLASSIFIER and layer.weights]
        if all(layer.trainable == (not frozen) for layer in backbone):
            return
        for layer in backbone:
            layer.trainable = not frozen
        # `fit` calls `self.train_function` afresh each step: the new one sees the new trainable set.
        self.model.make_train_function(force=True)
        print(f"Epoch {epoch + 1}: " + ("only the classifier trains" if frozen else "the whole network trains"))
