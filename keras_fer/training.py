"""Training runs: run directory, data, model, callbacks, distribution, `model.fit`, metrics.json.

`train(config, output_dir)` is what `python train.py` runs. One run directory holds one run:

    config.yaml     the resolved configuration (what makes two runs the same run)
    command.txt     every invocation's command line, one per start or resume
    best.keras      the model of the best epoch (by `training.monitor`)
    last.keras      the model after the last finished epoch, optimizer state included
    history.csv     one row per epoch (`HistoryLog`)
    logs/           TensorBoard logs (TensorFlow backend)
    backup/         `BackupAndRestore` state while a run is unfinished
    data/           the generated synthetic data set (`data.source: synthetic`)
    metrics.json    written last: final validation and test figures, code version, seed, time

Every file is written under a temporary name and renamed into place (`keras_fer.files`), so a
run killed while saving, or a save that fails (a full disk), leaves the previous good file.
Starting the same command again on an unfinished run directory resumes it from its last
finished epoch (weights, optimizer state, learning rate, callback counters). Everything
that can be wrong with the input is checked before any training work starts.

The TensorFlow backend reads data through `tf.data` and can use a `tf.distribute`
strategy; other backends (JAX) read NumPy arrays and skip the TensorFlow-only parts, so
this module imports TensorFlow only inside the functions that need it.
"""

import contextlib
import csv
import dataclasses
import importlib.util
import json
import math
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import keras

from keras_fer import config as config_lib
from keras_fer import data as fer_data
from keras_fer import evaluation, files
from keras_fer.losses import SparseCategoricalCrossentropy
from keras_fer.models import build_model

# Entries of a run directory that `--overwrite` removes; anything else is left alone.
RUN_ENTRIES = (
    "config.yaml", "command.txt", "best.keras", "last.keras", "history.csv", "metrics.json", "logs", "backup", "data",
    "workers",
)
# Environment variables that change how a run computes, recorded with its command line.
RECORDED_ENVIRONMENT = (
    "KERAS_BACKEND", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS",
    "CUDA_VISIBLE_DEVICES", "XLA_FLAGS", "TF_CONFIG",
)


class RunError(RuntimeError):
    """A run cannot start: missing data, an output directory holding something else, ..."""


class RunPaths:
    """The files of one run directory (see the module docstring)."""

    def __init__(self, root):
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.command = self.root / "command.txt"
        self.best_model = self.root / "best.keras"
        self.last_model = self.root / "last.keras"
        self.history = self.root / "history.csv"
        self.metrics = self.root / "metrics.json"
        self.logs = self.root / "logs"
        self.backup = self.root / "backup"
        self.synthetic_data = self.root / "data" / "synthetic_fer2013.csv"


def backend_name():
    return keras.backend.backend()


def uses_tensorflow():
    return backend_name() == "tensorflow"


# ---------------------------------------------------------------------------------------------
# Run directory


def prepare_run_directory(paths, config, overwrite=False, dry_run=False):
    """Checks that `paths.root` may hold this run; creates it and writes config.yaml.

    Returns:
        True when an unfinished run of the same configuration is there to resume.
    Raises:
        RunError: the directory holds other files, a different run or a finished run,
            and `overwrite` is False.
    """
    if paths.root.exists() and not paths.root.is_dir():
        raise RunError(f"--output-dir {paths.root} is a file, not a directory")
    existing = sorted(entry.name for entry in paths.root.iterdir()) if paths.root.is_dir() else []
    # The other workers of a multi-worker job start at the same time as the chief and may have
    # created their directories under workers/ already: that alone is not another run.
    if existing == ["workers"] and not paths.config.exists():
        existing = []
    if existing and not overwrite:
        if not paths.config.exists():
            raise RunError(
                f"--output-dir {paths.root} is not empty and holds no run ({', '.join(existing[:5])}); "
                "choose an empty or new directory, or pass --overwrite"
            )
        try:
            previous = config_lib.load_config(paths.config)
        except config_lib.ConfigError as error:
            raise RunError(f"--output-dir {paths.root} holds a run whose config does not load ({error}); "
                           "pass --overwrite to replace it") from None
        difference = first_difference(previous.to_dict(), config.to_dict())
        if difference:
            raise RunError(
                f"--output-dir {paths.root} holds a different run ({difference}); "
                "choose another directory, or pass --overwrite to replace it"
            )
        if paths.metrics.exists():
            raise RunError(
                f"--output-dir {paths.root} holds a finished run of this configuration "
                f"(see {paths.metrics}); pass --overwrite to train it again"
            )
        return True
    if dry_run:
        return False
    for name in RUN_ENTRIES if existing else ():
        entry = paths.root / name
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.exists():
            entry.unlink()
    paths.root.mkdir(parents=True, exist_ok=True)
    files.write_text(paths.config, config_lib.to_yaml(config))
    return False


def command_line(argv, environ=None):
    """The shell line that repeats this invocation: recorded environment, CPU pinning, python, argv.

    For example `KERAS_BACKEND=jax taskset -c 0 python train.py --config 'my config.yaml'` for
    `argv=["train.py", "--config", "my config.yaml"]` under `KERAS_BACKEND=jax`, pinned to CPU 0.
    """
    environ = os.environ if environ is None else environ
    words = [f"{name}={shlex.quote(environ[name])}" for name in RECORDED_ENVIRONMENT if name in environ]
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if allowed and len(allowed) < os.cpu_count():  # pinned to some CPUs (taskset): part of the speed
        words += ["taskset", "-c", ",".join(map(str, allowed))]
    return " ".join(words + ["python", shlex.join(argv)])


def record_command(paths, command, resume, version):
    """Appends `command` to command.txt under a comment with the time, code version and start or resume."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(paths.command, "a") as file:
        file.write(f"# {stamp} {'resume' if resume else 'start'} at {version}\n{command}\n")


def first_difference(old, new, prefix=""):
    """`key: old -> new` for the first dotted key whose value differs, or None."""
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            found = first_difference(before, after, f"{prefix}{key}.")
            if found:
                return found
        elif before != after:
            return f"{prefix}{key}: {before!r} in the directory, {after!r} now"
    return None


def code_version():
    """The git commit of this checkout (with `-dirty` for local changes), or the package version."""
    package_dir = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=package_dir, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        import keras_fer

        return f"keras_fer {keras_fer.__version__} (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------
# Data


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


# ---------------------------------------------------------------------------------------------
# Devices, model, optimizer


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
    training = config.training
    model.compile(
        optimizer=make_optimizer(training.optimizer, make_learning_rate(training, steps_per_epoch)),
        loss=SparseCategoricalCrossentropy(label_smoothing=training.label_smoothing),
        metrics=["accuracy"],
        jit_compile=config.runtime.jit_compile,
    )
    # Built now, so that `BackupAndRestore` can load optimizer state into it.
    model.optimizer.build(model.trainable_variables)


# ---------------------------------------------------------------------------------------------
# Callbacks


class CallbackStateBackup(keras.callbacks.Callback):
    """Saves and restores the counters of the monitoring callbacks, for `BackupAndRestore`.

    `BackupAndRestore` restores weights, optimizer state (learning rate included) and the
    epoch, but `ReduceLROnPlateau`, `EarlyStopping` and `ModelCheckpoint` start afresh in
    each `fit`: a resumed run would forget its best value and patience. This callback
    writes them next to the backup after every epoch and puts them back when training
    begins. It must follow those callbacks in the list. `EarlyStopping`'s best weights are
    not kept: after `fit` the run reloads best.keras instead.
    """

    STATE = ("best", "wait", "best_epoch", "cooldown_counter")

    def __init__(self, path, callbacks):
        super().__init__()
        self.path = Path(path)
        self.tracked = callbacks

    def on_train_begin(self, logs=None):
        if not self.path.exists():
            return
        saved = json.loads(self.path.read_text())
        for name, callback in self.tracked.items():
            for attribute, value in saved.get(name, {}).items():
                setattr(callback, attribute, value)

    def on_epoch_end(self, epoch, logs=None):
        state = {
            name: {attribute: to_json_number(getattr(callback, attribute))
                   for attribute in self.STATE if hasattr(callback, attribute)}
            for name, callback in self.tracked.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(self.path, json.dumps(state))


def to_json_number(value):
    """A Python number (or None) from a NumPy or backend scalar."""
    return None if value is None else float(value) if isinstance(value, float) or hasattr(value, "dtype") else value


class EpochThroughput(keras.callbacks.Callback):
    """Adds `train_seconds` and `train_images_per_second` (training batches only) to each epoch's logs.

    The first epoch's figure includes tracing and compilation; later epochs are steady state.
    """

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.batches, self.seconds = time.monotonic(), 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_test_begin(self, logs=None):
        # Validation runs inside the epoch; stop the training clock where it starts.
        if self.seconds is None:
            self.seconds = time.monotonic() - self.started

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.seconds if self.seconds is not None else time.monotonic() - self.started
        if logs is not None:
            logs["train_seconds"] = round(seconds, 2)
            logs["train_images_per_second"] = round(self.batches * self.batch_size / seconds, 2)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that saves under a temporary name and renames the file into place.

    A process killed while saving, or a save that fails, leaves the previous checkpoint
    intact; the failure is a `files.FileWriteError` naming the checkpoint.
    """

    def _get_file_path(self, epoch, batch, logs):
        return str(files.partial_path(super()._get_file_path(epoch, batch, logs)))

    def _save_model(self, epoch, batch, logs):
        target = Path(super()._get_file_path(epoch, batch, logs))
        with files.replaced_on_success(target):  # nothing to rename on an epoch that is not saved
            super()._save_model(epoch, batch, logs)


class HistoryLog(keras.callbacks.Callback):
    """Writes history.csv, one row per epoch, rewriting the whole file atomically after each epoch.

    The columns are `epoch` and the sorted log keys of the first epoch, as `CSVLogger` writes
    them. A resumed run continues the rows already in the file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_train_begin(self, logs=None):
        self.rows, self.keys = [], None
        if self.path.exists():
            with open(self.path, newline="") as file:
                reader = csv.DictReader(file)
                self.rows = list(reader)
                self.keys = [key for key in reader.fieldnames or () if key != "epoch"] or None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        self.rows.append({"epoch": epoch, **{key: to_json_number(logs.get(key, "NA")) for key in self.keys}})
        with files.replaced_on_success(self.path) as partial:
            with open(partial, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=["epoch", *self.keys])
                writer.writeheader()
                writer.writerows(self.rows)


class LearningRateLog(keras.callbacks.Callback):
    """Adds the learning rate the schedule reached at the end of each epoch to its logs (history.csv).

    `ReduceLROnPlateau` logs it itself; a schedule has no callback that does.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class TimeLimit(keras.callbacks.Callback):
    """Stops training when the next epoch would end after `minutes` (counted from `fit`'s start).

    Between epochs it predicts from the last epoch's length, so a run normally ends on a whole
    epoch; if one epoch alone overruns the limit, training stops after the current batch.
    """

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60.0

    def on_train_begin(self, logs=None):
        self.started = self.epoch_started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.started > self.seconds and not self.model.stop_training:
            print(f"\nTime limit: {self.seconds / 60:g} minutes reached inside an epoch; stopping after this batch.")
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if now + (now - self.epoch_started) - self.started > self.seconds and not self.model.stop_training:
            print(f"Time limit: another epoch would end past {self.seconds / 60:g} minutes; stopping.")
            self.model.stop_training = True


def make_callbacks(config, paths):
    """The run's callbacks, in the order they must run at the end of an epoch.

    The backup is written after the checkpoints and counters it must agree with, and
    before `HistoryLog`, so that a run killed between the two loses a log row rather than
    logging one epoch twice.
    """
    training = config.training
    monitor = training.monitor
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=monitor, patience=training.early_stopping.patience,
        restore_best_weights=training.early_stopping.restore_best_weights, verbose=1,
    )
    best = AtomicModelCheckpoint(paths.best_model, monitor=monitor, save_best_only=True, verbose=1)
    tracked = {"early_stopping": early_stopping, "best_checkpoint": best}
    if training.schedule == "plateau":
        tracked["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=training.reduce_lr.factor, patience=training.reduce_lr.patience,
            min_lr=training.reduce_lr.min_lr, verbose=1,
        )
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        EpochThroughput(training.batch_size),
        *([tracked["reduce_lr"]] if "reduce_lr" in tracked else []),
        early_stopping,
        best,
        AtomicModelCheckpoint(paths.last_model),
        CallbackStateBackup(paths.backup / "callbacks.json", tracked),
        *([LearningRateLog()] if training.schedule != "plateau" else []),
        keras.callbacks.BackupAndRestore(paths.backup),
        HistoryLog(paths.history),
    ]
    if training.time_limit_minutes is not None:
        callbacks.append(TimeLimit(training.time_limit_minutes))
    if not uses_tensorflow():
        print(f"Notice: TensorBoard logging needs the TensorFlow backend; skipped on {backend_name()}.")
    elif importlib.util.find_spec("tensorboard") is None:
        # TensorFlow 2.21 no longer installs TensorBoard with itself.
        print("Notice: TensorBoard logging skipped: the tensorboard package is not installed (pip install tensorboard).")
    else:
        callbacks.append(keras.callbacks.TensorBoard(paths.logs))
    return callbacks


# ---------------------------------------------------------------------------------------------
# The run


def train(config, output_dir, overwrite=False, dry_run=False, command=None):
    """Trains (or, with `dry_run`, only builds) the run of `config` in `output_dir`.

    `command`, the invocation's shell line (`command_line(sys.argv)`), is appended to the run's
    command.txt, so that the run directory says how it was made.

    Returns:
        The metrics.json dict, or with `dry_run` the resolved settings of the model,
        optimizer, callbacks and data that training would use.
    Raises:
        RunError: the data or the output directory is not usable (before any work).
    """
    started = time.monotonic()
    # Read when the run starts: the checkout may change (a commit, an edit) while it trains.
    version = code_version()
    # First: a multi-worker strategy must be created before TensorFlow runs any operation.
    strategy = make_strategy(config.runtime.strategy)
    paths = RunPaths(Path(output_dir))
    if not is_chief():
        # Non-chief workers of a multi-worker job keep their own files apart.
        worker = json.loads(os.environ["TF_CONFIG"])["task"]
        paths = RunPaths(paths.root / "workers" / f"{worker['type']}-{worker['index']}")
    synthetic = config.data.source == "synthetic"
    check_data_source(config)
    if not synthetic:  # a real file is checked before the run directory is touched
        path, sizes = checked_data(config, paths)
    resume = prepare_run_directory(paths, config, overwrite, dry_run)
    print(f"Keras {keras.__version__}, backend {backend_name()}; run directory {paths.root}"
          + (" (resuming)" if resume else ""))
    if command is not None and not dry_run:
        record_command(paths, command, resume, version)
    if synthetic and dry_run:
        # The sizes the synthetic data set will have once generated.
        path, sizes = "synthetic (generated when training)", synthetic_split_sizes(config)
    elif synthetic:
        path, sizes = checked_data(config, paths)
    steps_per_epoch = train_steps_per_epoch(config, sizes)

    keras.mixed_precision.set_global_policy(config.runtime.mixed_precision)
    keras.utils.set_random_seed(config.training.seed)
    class_names = fer_data.class_names(config.data.labels)

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = make_model(config, len(class_names))
        compile_model(model, config, steps_per_epoch)
    callbacks = make_callbacks(config, paths)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    devices = f"strategy {config.runtime.strategy} ({replicas} replica(s))" if strategy is not None else "one device"
    print(f"Model {model.name}: {model.count_params():,} parameters; policy {config.runtime.mixed_precision}, "
          f"jit_compile {config.runtime.jit_compile}, {devices}")
    if dry_run:
        return dry_run_report(config, model, callbacks, sizes, replicas, steps_per_epoch)

    inputs = fit_inputs(config, path)
    if strategy is not None and config.runtime.strategy == "multi_worker":
        adapt_to_multi_worker(model, inputs["x"].element_spec)
    history = model.fit(
        epochs=config.training.epochs,
        steps_per_epoch=config.training.steps_per_epoch,
        validation_steps=config.training.validation_steps,
        callbacks=callbacks,
        verbose=config.training.verbose,
        **inputs,
    )
    metrics = final_metrics(config, paths, path, sizes, class_names, history, replicas, version)
    metrics["wall_time_seconds"] = round(time.monotonic() - started, 1)
    files.write_text(paths.metrics, json.dumps(metrics, indent=2) + "\n")
    print(summary_line(metrics, config.training.monitor))
    return metrics


def final_metrics(config, paths, path, sizes, class_names, history, replicas, version):
    """Evaluates best.keras on the validation and test splits; the metrics.json dict."""
    epochs = read_history(paths.history) if paths.history.exists() else []
    if not epochs or not paths.best_model.exists():
        raise RunError(f"training stopped before an epoch finished with a {config.training.monitor} "
                       f"(a NaN loss?); see {paths.root}")
    monitor = config.training.monitor
    values = [row[monitor] for row in epochs]
    best_index = values.index(max(values) if monitor.endswith("accuracy") else min(values))
    best_model = keras.saving.load_model(paths.best_model)
    evaluate = dict(labels=config.data.labels, ferplus_path=config.data.ferplus_path,
                    class_names=class_names, batch_size=config.training.batch_size)
    test_split = config.data.test_split
    return {
        "best_epoch": int(epochs[best_index]["epoch"]) + 1,
        f"best_{monitor}": values[best_index],
        "epochs_run": len(epochs),
        "stopped_early": len(epochs) < config.training.epochs,
        "validation": evaluation.evaluate_split(best_model, path, config.data.validation_split, **evaluate),
        "test": (evaluation.evaluate_split(best_model, path, test_split, **evaluate) if test_split in sizes
                 else {"split": test_split, "status": "absent", "note": f"{path} has no {test_split} rows"}),
        "models": {"best": str(paths.best_model), "last": str(paths.last_model)},
        "data": {"path": str(path), "splits": sizes},
        "code_version": version,
        "seed": config.training.seed,
        "backend": backend_name(),
        "keras_version": keras.__version__,
        "replicas": replicas,
        "epochs_this_invocation": len(history.epoch),
    }


def read_history(path):
    """history.csv as a list of {column: float}, one per epoch."""
    with open(path, newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


def summary_line(metrics, monitor):
    """One line: best validation figure and epoch, test accuracy, wall time, model path."""
    test = metrics["test"]
    test_text = f"test accuracy {test['accuracy']:.4f}" if "accuracy" in test else "test split absent"
    minutes, seconds = divmod(metrics["wall_time_seconds"], 60)
    return (f"Best {monitor} {metrics[f'best_{monitor}']:.4f} at epoch {metrics['best_epoch']}/"
            f"{metrics['epochs_run']}; {test_text}; {int(minutes)}m{seconds:04.1f}s; model {metrics['models']['best']}")


def dry_run_report(config, model, callbacks, sizes, replicas, steps_per_epoch):
    """What training would use, read back from the built objects (not from the config)."""
    by_type = {type(callback).__name__: callback for callback in callbacks}
    optimizer = model.optimizer.get_config()
    early_stopping = by_type["EarlyStopping"]
    schedule = None
    if isinstance(optimizer["learning_rate"], dict):  # get_config serializes a LearningRateSchedule
        serialized = optimizer["learning_rate"]
        peak = serialized["config"]["warmup_target"]
        optimizer["learning_rate"] = peak  # the peak, reported beside the schedule
        schedule = {"class": serialized["class_name"], "warmup_steps": serialized["config"]["warmup_steps"],
                    "decay_steps": serialized["config"]["decay_steps"], "peak": to_json_number(peak)}
    reduce_lr = by_type.get("ReduceLROnPlateau")
    return {
        "model": {
            "name": model.name,
            "input_shape": list(model.input_shape),
            "backbone_input": list(model.get_layer("stem_conv").input.shape[1:]),
            "output_shape": list(model.output_shape),
            "parameters": model.count_params(),
            "masks": [layer.name for layer in model.layers if layer.name.endswith("_mask")],
            "dtype_policy": model.dtype_policy.name,
        },
        "optimizer": {"class": type(model.optimizer).__name__, **{
            key: to_json_number(optimizer[key])
            for key in ("learning_rate", "momentum", "nesterov", "weight_decay") if key in optimizer}},
        "loss": {"class": type(model.loss).__name__, "label_smoothing": model.loss.label_smoothing},
        "schedule": schedule,
        "fit": {"batch_size": config.training.batch_size, "epochs": config.training.epochs, "replicas": replicas,
                "train_split": config.data.train_split, "validation_split": config.data.validation_split},
        "reduce_lr": reduce_lr and {"monitor": reduce_lr.monitor, "factor": reduce_lr.factor,
                                    "patience": reduce_lr.patience},
        "early_stopping": {"monitor": early_stopping.monitor, "patience": early_stopping.patience,
                           "restore_best_weights": early_stopping.restore_best_weights},
        "callbacks": [type(callback).__name__ for callback in callbacks],
        "data_splits": sizes,
        "steps_per_epoch": steps_per_epoch,
    }
