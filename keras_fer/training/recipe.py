"""The recipe: the network of `config.model`, the optimizer, the learning-rate schedule and the loss."""

import dataclasses
import math

import keras

from keras_fer.losses import SparseCategoricalCrossentropy
from keras_fer.models import build_model, check_build_arguments
from keras_fer.training.distribution import uses_tensorflow
from keras_fer.training.run_directory import RunError

def model_build_arguments(config, num_classes):
    """The `build_model` keyword arguments of `config.model`, without augmentation."""
    model = config.model
    return dict(
        input_size=model.input_size,
        width=model.width,
        num_classes=num_classes,
        mask_depths=list(model.mask_depths),
        mask_width=model.mask_width,
        use_masks=model.use_masks,
        use_eca=model.use_eca,
        mask_activation=model.mask_activation,
        dropout=model.dropout,
        eca_gamma=model.eca_gamma,
        eca_b=model.eca_b,
        stem=model.stem,
    )


def check_model(config, num_classes):
    """Raises RunError, naming the `model` section, where `config.model` cannot be built."""
    arguments = model_build_arguments(config, num_classes)
    checked = ("input_size", "width", "num_classes", "mask_depths", "mask_width", "use_masks", "dropout", "stem")
    try:
        check_build_arguments(**{name: arguments[name] for name in checked})
    except ValueError as error:
        raise RunError(f"model: {error}") from None


def make_model(config, num_classes):
    """The network of `config.model`, its augmentation seeded by `training.seed`."""
    augmentation = None
    if config.model.augmentation is not None:
        augmentation = dict(dataclasses.asdict(config.model.augmentation), seed=config.training.seed)
    return build_model(**model_build_arguments(config, num_classes), augmentation=augmentation)


def train_steps_per_epoch(config, sizes):
    """Optimizer steps in one epoch: `training.steps_per_epoch`, else whole batches of the training split.

    The TensorFlow pipeline drops the last partial batch; NumPy input (other backends) keeps it.
    """
    if config.training.steps_per_epoch is not None:
        return config.training.steps_per_epoch
    faces, batch = sizes[config.data.train_split], config.training.batch_size
    return faces // batch if uses_tensorflow() else math.ceil(faces / batch)


def make_learning_rate(training, steps_per_epoch):
    """The optimizer's learning rate: a number for `plateau`, a warm-up + cosine schedule for `cosine`.

    The cosine schedule reaches 0 at the end of `training.epochs`: a run cut short by
    `time_limit_minutes` stops before it does.
    """
    peak = training.optimizer.learning_rate
    if training.schedule == "plateau":
        return peak
    warmup_steps = training.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=training.epochs * steps_per_epoch - warmup_steps, warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def make_optimizer(settings, learning_rate):
    """SGD (momentum, Nesterov) or AdamW, both with Keras's decoupled `weight_decay`."""
    if settings.name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=settings.momentum,
            nesterov=settings.nesterov, weight_decay=settings.weight_decay,
        )
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=settings.weight_decay)


def compile_model(model, config, steps_per_epoch):
    """Compiles `model` with the config's optimizer, schedule (`steps_per_epoch` long epochs) and loss, and builds the optimizer."""
    training = config.training
    # Vote targets and a teacher's (keras_fer.training.teacher) are distributions over the classes;
    # "accuracy" then compares their argmax, the majority label, with the prediction's.
    soft_targets = config.data.targets == "votes" or config.training.teacher is not None
    loss_class = keras.losses.CategoricalCrossentropy if soft_targets else SparseCategoricalCrossentropy
    model.compile(
        optimizer=make_optimizer(training.optimizer, make_learning_rate(training, steps_per_epoch)),
        loss=loss_class(label_smoothing=training.label_smoothing),
        metrics=["accuracy"],
        jit_compile=config.runtime.jit_compile,
    )
    # Built now, so that `BackupAndRestore` can load optimizer state into it.
    model.optimizer.build(model.trainable_variables)
