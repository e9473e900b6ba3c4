"""The run's data: the source checked before any work, its split sizes, and `model.fit`'s inputs."""

import os
from pathlib import Path

from keras_fer import data as fer_data
from keras_fer import files
from keras_fer.training.distribution import uses_tensorflow
from keras_fer.training.run_directory import RunError

def check_data_source(config):
    """Raises RunError now if the data file (or FERPlus file) is missing."""
    files = [] if config.data.source == "synthetic" else [("data file", config.data.source)]
    if config.data.ferplus_path is not None:
        files.append(("FERPlus file", config.data.ferplus_path))
    for what, path in files:
        if not os.path.isfile(path):
            raise RunError(f"{what} {path} not found (set it with --data PATH or data.source in the config)")


def data_file(config, paths):
    """The FER2013 CSV to read: the configured file, or the synthetic one, written if absent."""
    if config.data.source != "synthetic":
        return Path(config.data.source)
    if not paths.synthetic_data.exists():
        synthetic = config.data.synthetic
        paths.synthetic_data.parent.mkdir(parents=True, exist_ok=True)
        with files.replaced_on_success(paths.synthetic_data) as partial:
            fer_data.write_synthetic_fer2013(
                partial,
                {
                    "Training": synthetic.train_per_class,
                    "PublicTest": synthetic.validation_per_class,
                    "PrivateTest": synthetic.test_per_class,
                },
                seed=synthetic.seed,
            )
    return paths.synthetic_data


def synthetic_split_sizes(config):
    """The faces per split of the synthetic data set that `config.data.synthetic` describes."""
    synthetic, classes = config.data.synthetic, len(fer_data.class_names(config.data.labels))
    return {"Training": synthetic.train_per_class * classes, "PublicTest": synthetic.validation_per_class * classes,
            "PrivateTest": synthetic.test_per_class * classes}


def split_sizes(path, config):
    """Rows the label mode keeps in each split present in the file (validates the file)."""
    try:
        counts = fer_data.count_fer2013(path, ferplus_path=config.data.ferplus_path, labels=config.data.labels)
    except fer_data.FER2013FormatError as error:
        raise RunError(f"the data file is not a FER2013 CSV: {error}") from None
    return {split: counts["splits"][split]["kept"] for split in counts["splits"] if counts["splits"][split]["kept"]}


def checked_data(config, paths):
    """The data file (generated if synthetic) and its split sizes; RunError if it cannot train.

    The training and validation splits must be present; the test split may be absent.
    """
    path = data_file(config, paths)
    sizes = split_sizes(path, config)
    for role in ("train_split", "validation_split"):
        split = getattr(config.data, role)
        if split not in sizes:
            raise RunError(f"{path} has no {split} rows (data.{role}); it holds {', '.join(sizes) or 'none'}")
    print(f"Data {path}: " + ", ".join(f"{split} {count}" for split, count in sizes.items()))
    return path, sizes


def fit_inputs(config, path):
    """Keyword arguments of `model.fit` for the training and validation data.

    TensorFlow: shuffled, cached `tf.data` pipelines of whole batches (repeated when
    `steps_per_epoch` is set, so that epochs of a fixed length never run dry). Other
    backends: NumPy arrays.
    """
    data, training = config.data, config.training
    read = dict(labels=data.labels, ferplus_path=data.ferplus_path)
    if not uses_tensorflow():
        images, labels = fer_data.read_fer2013(path, usage=data.train_split, **read)
        validation = fer_data.read_fer2013(path, usage=data.validation_split, **read)
        return dict(x=images, y=labels, batch_size=training.batch_size, shuffle=True, validation_data=validation)
    # drop_remainder: every step has one batch shape, so the step is traced (compiled) once,
    # and replicas of a strategy get equal shares; the dropped faces differ every epoch.
    train = fer_data.fer2013_dataset(
        path, usage=data.train_split, batch_size=training.batch_size, shuffle=True, seed=training.seed,
        cache=data.cache, repeat=training.steps_per_epoch is not None, drop_remainder=True, **read,
    )
    validation = fer_data.fer2013_dataset(
        path, usage=data.validation_split, batch_size=training.batch_size, cache=True, **read
    )
    if config.runtime.strategy == "multi_worker":
        train, validation = (shard_by_data(dataset) for dataset in (train, validation))
    # shuffle=False: the dataset shuffles itself, and Keras warns about the flag on datasets.
    return dict(x=train, validation_data=validation, shuffle=False)


def shard_by_data(dataset):
    """Multi-worker input: each worker takes every n-th batch (one CSV cannot be split by file)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
