"""Knowledge distillation: each training face's target mixes its label with a teacher's probabilities.

`training.teacher` names a model that gives the run's classes: a preset (`fer2013`),
one network of an ensemble preset (`PRESET:memberN`) or a trained `.keras` file. Before the first epoch, the
teacher classifies every face of the training split once, as the face is stored (without the
run's augmentation; a preset also averages each face with its mirror image, as it does for
users), and the face's target becomes

    (1 - training.teacher_weight) * its label + training.teacher_weight * the teacher's probabilities

where the label is one-hot, or FERPlus's vote shares with `data.targets: votes`. A face whose
label the teacher doubts is then taught with the teacher's doubt, which is how an ensemble's
accuracy can be carried into one network of a single network's cost. The targets are
distributions, so the loss is the categorical cross-entropy and validation labels are
one-hot; the training split is held in memory (2.3 KB a face, 66 MB for FER2013's Training).
"""

import time

import numpy as np

from keras_fer.training.run_directory import RunError


def load_teacher(name, class_names):
    """The teacher model that `training.teacher` names, checked to give `class_names` in their order.

    Args:
        name: a preset name, `PRESET:memberN`, or a `.keras` file.
        class_names: the run's classes in output order.
    Raises:
        RunError: an unknown preset, a missing or unloadable file, or other classes.

    Example:
    >>> teacher = load_teacher("fer2013", ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"))
    >>> teacher.output_shape
    (None, 7)
    """
    from keras_fer.evaluation import load_model_file, model_class_names

    try:
        teacher = load_model_file(name)
        teacher_classes = tuple(model_class_names(name, teacher))
    except ValueError as error:
        raise RunError(f"training.teacher: {error}") from None
    if teacher_classes != tuple(class_names):
        raise RunError(f"training.teacher {name!r} gives the classes {', '.join(teacher_classes)}; the run's are "
                       f"{', '.join(class_names)}: a teacher must give the run's classes, in the run's order")
    return teacher


def class_shares(targets, num_classes):
    """Targets as distributions over the classes: labels one-hot, vote shares as they are.

    Example:
    >>> class_shares(np.array([2, 0]), 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    targets = np.asarray(targets)
    if targets.ndim == 1:
        return np.eye(num_classes, dtype=np.float32)[targets]
    return targets.astype(np.float32)


def distilled_targets(targets, teacher_probabilities, teacher_weight):
    """(1 - teacher_weight) x `targets`' class shares + teacher_weight x the teacher's probabilities.

    Args:
        targets: int (N,) labels, or float (N, K) vote shares.
        teacher_probabilities: float (N, K), the teacher's for the same faces.
        teacher_weight: in (0, 1].
    Returns:
        float32 (N, K), each row a distribution.

    Example:
    >>> distilled_targets(np.array([0]), np.array([[0.2, 0.8]]), 0.5).tolist()
    [[0.6000000238418579, 0.4000000059604645]]
    """
    teacher_probabilities = np.asarray(teacher_probabilities, np.float32)
    shares = class_shares(targets, teacher_probabilities.shape[1])
    return (1.0 - teacher_weight) * shares + teacher_weight * teacher_probabilities


def distillation_inputs(config, data, teacher):
    """Keyword arguments of `model.fit`: the training faces with distilled targets, validation with one-hot ones.

    NumPy arrays on every backend, which `model.fit` batches and shuffles with the global seed
    (`keras.utils.set_random_seed`, the invocation's seed).
    """
    source, training = config.data, config.training
    images, targets = data.arrays(config, source.train_split)
    started = time.monotonic()
    probabilities = teacher.predict(images, batch_size=training.batch_size, verbose=training.verbose)
    print(f"Teacher {training.teacher}: probabilities of {len(images):,} {source.train_split} faces in "
          f"{time.monotonic() - started:.0f} s; each target is {1 - training.teacher_weight:g} x the label + "
          f"{training.teacher_weight:g} x the teacher's")
    validation_images, validation_targets = data.arrays(config, source.validation_split)
    validation = (validation_images, class_shares(validation_targets, len(data.class_names)))
    return dict(x=images, y=distilled_targets(targets, probabilities, training.teacher_weight),
                batch_size=training.batch_size, shuffle=True, validation_data=validation)
