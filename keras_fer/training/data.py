"""The run's data: the source checked before any work, its split sizes, and `model.fit`'s inputs."""

import dataclasses
import os
import typing
from pathlib import Path

from keras_fer import data as fer_data
from keras_fer import evaluation, files
from keras_fer.training.distribution import uses_tensorflow
from keras_fer.training.run_directory import RunError


@dataclasses.dataclass
class TrainingData:
    """What a run reads: a FER2013 CSV or an image folder, with its split sizes and class names.

    Attributes:
        path: the CSV (the generated one for `data.source: synthetic`) or the folder.
        sizes: split name -> faces in it (of the label mode; readable images of a folder).
        class_names: the classes in output order.
        folder: the scanned `keras_fer.data.ImageFolder` of a folder source, else None.
    """

    path: typing.Union[Path, str]
    sizes: dict
    class_names: tuple
    folder: typing.Any = None

    def dataset(self, config, split, **options):
        """Batches of raw faces of `split` and their `data.targets` in `tf.data` (`fer2013_dataset`'s or
        `folder_dataset`'s options)."""
        data = config.data
        if self.folder is not None:
            return fer_data.folder_dataset(self.folder, split, detect_faces=data.detect_faces, **options)
        return fer_data.fer2013_dataset(self.path, usage=split, labels=data.labels, ferplus_path=data.ferplus_path,
                                        targets=data.targets, **options)

    def arrays(self, config, split):
        """`(images, targets)` of `split` as NumPy arrays (backends other than TensorFlow)."""
        data = config.data
        if self.folder is not None:
            return fer_data.read_image_folder(self.folder, split, detect_faces=data.detect_faces)
        return fer_data.read_fer2013(self.path, usage=split, labels=data.labels, ferplus_path=data.ferplus_path,
                                     targets=data.targets)

    def evaluate(self, model, config, split):
        """`keras_fer.evaluation`'s report of `model` on `split`."""
        batch_size = config.training.batch_size
        if self.folder is not None:
            return evaluation.evaluate_folder(model, self.folder, split, detect_faces=config.data.detect_faces,
                                              batch_size=batch_size)
        return evaluation.evaluate_split(model, self.path, split, labels=config.data.labels,
                                         ferplus_path=config.data.ferplus_path, class_names=self.class_names,
                                         batch_size=batch_size)


def is_folder_source(config):
    """Whether the run reads an image folder (rather than a FER2013 CSV or synthetic faces)."""
    return config.data.source != "synthetic" and fer_data.is_image_folder(config.data.source)


def check_data_source(config):
    """Raises RunError now if the data file or folder (or the FERPlus file) is missing."""
    source = config.data.source
    if is_folder_source(config):
        if config.data.targets == "votes":
            raise RunError(f"data.targets votes: vote shares come from FERPlus's vote file for FER2013 CSV rows, "
                           f"and data.source {source} is an image folder, whose images have one label each; "
                           "set data.targets: labels")
        if config.data.ferplus_path is not None:
            raise RunError(f"data.ferplus_path {config.data.ferplus_path}: FERPlus votes label FER2013 CSV rows, "
                           f"and data.source {source} is an image folder; set data.ferplus_path: null")
        return
    if config.data.labels == "folders":
        raise RunError(f"data.labels folders: the classes come from an image folder's class folders, and "
                       f"data.source {source} is not a directory")
    files = [] if source == "synthetic" else [("data file", source)]
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
    """The run's `TrainingData` (the synthetic CSV generated if need be); RunError if it cannot train.

    The training and validation splits must be present; the test split may be absent.
    """
    if is_folder_source(config):
        data = scanned_folder(config)
    else:
        path = data_file(config, paths)
        data = TrainingData(path, split_sizes(path, config), fer_data.class_names(config.data.labels))
    for role in ("train_split", "validation_split"):
        split = getattr(config.data, role)
        if split not in data.sizes:
            what = "images" if data.folder is not None else "rows"
            raise RunError(f"{data.path} has no {split} {what} (data.{role}); it holds {', '.join(data.sizes) or 'none'}")
    print(f"Data {data.path}: " + ", ".join(f"{split} {count}" for split, count in data.sizes.items())
          + f"; classes {', '.join(data.class_names)}")
    return data


def scanned_folder(config):
    """The `TrainingData` of an image folder: every file listed and its header checked, classes mapped."""
    data = config.data
    try:
        folder = fer_data.scan_image_folder(data.source, labels=data.labels, class_map=data.class_map,
                                            validation_fraction=data.validation_fraction, seed=config.training.seed)
    except fer_data.FolderFormatError as error:
        raise RunError(f"data.source: {error}") from None
    sizes = {split: len(split_paths) for split, (split_paths, _) in folder.splits.items()}
    return TrainingData(Path(data.source), sizes, tuple(folder.class_names), folder)


def fit_inputs(config, data, seed):
    """Keyword arguments of `model.fit` for the training and validation data of `TrainingData`.

    TensorFlow: shuffled, cached `tf.data` pipelines of whole batches (repeated when
    `steps_per_epoch` is set, so that epochs of a fixed length never run dry), the shuffle
    seeded with `seed` (the invocation's, `invocation_seed`). Other backends: NumPy arrays,
    which `model.fit` shuffles with the global seed.
    """
    source, training = config.data, config.training
    if not uses_tensorflow():
        images, labels = data.arrays(config, source.train_split)
        validation = data.arrays(config, source.validation_split)
        return dict(x=images, y=labels, batch_size=training.batch_size, shuffle=True, validation_data=validation)
    # drop_remainder: every step has one batch shape, so the step is traced (compiled) once,
    # and replicas of a strategy get equal shares; the dropped faces differ every epoch.
    train = data.dataset(
        config, source.train_split, batch_size=training.batch_size, shuffle=True, seed=seed,
        cache=source.cache, repeat=training.steps_per_epoch is not None, drop_remainder=True,
    )
    validation = data.dataset(config, source.validation_split, batch_size=training.batch_size, cache=True)
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
