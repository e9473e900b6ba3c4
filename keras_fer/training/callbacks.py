"""The run's callbacks: checkpoints, history, learning-rate log, throughput, time limit, resumable state."""

import csv
import importlib.util
import json
import time
from pathlib import Path

import keras

from keras_fer import files
from keras_fer.training.distribution import backend_name, uses_tensorflow
from keras_fer.training.initialization import FreezeBackbone

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
    epoch; if one epoch alone overruns the limit, training stops after the current batch, and that
    shortened epoch counts as run. When epochs remain, it keeps `backup`'s checkpoint, which
    `BackupAndRestore` would delete at the end of training, so that the same command continues
    the run (a run longer than one session's budget).

    Args:
        minutes: the limit, float.
        backup: the run's `keras.callbacks.BackupAndRestore`, or None.
    """

    def __init__(self, minutes, backup=None):
        super().__init__()
        self.seconds = minutes * 60.0
        self.backup = backup

    def on_train_begin(self, logs=None):
        self.started = self.epoch_started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.started > self.seconds and not self.model.stop_training:
            print(f"\nTime limit: {self.seconds / 60:g} minutes reached inside an epoch; stopping after this batch.")
            self.stop()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if now + (now - self.epoch_started) - self.started > self.seconds and not self.model.stop_training:
            print(f"Time limit: another epoch would end past {self.seconds / 60:g} minutes; stopping.")
            self.stop()

    def stop(self):
        self.model.stop_training = True
        if self.backup is not None and self.epoch + 1 < self.params["epochs"]:
            self.backup.delete_checkpoint = False


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
    backup = keras.callbacks.BackupAndRestore(paths.backup)
    callbacks = [
        *([FreezeBackbone(training.freeze_epochs)] if training.freeze_epochs else []),
        keras.callbacks.TerminateOnNaN(),
        EpochThroughput(training.batch_size),
        *([tracked["reduce_lr"]] if "reduce_lr" in tracked else []),
        early_stopping,
        best,
        AtomicModelCheckpoint(paths.last_model),
        CallbackStateBackup(paths.backup / "callbacks.json", tracked),
        *([LearningRateLog()] if training.schedule != "plateau" else []),
        backup,
        HistoryLog(paths.history),
    ]
    if training.time_limit_minutes is not None:
        callbacks.append(TimeLimit(training.time_limit_minutes, backup))
    if not uses_tensorflow():
        print(f"Notice: TensorBoard logging needs the TensorFlow backend; skipped on {backend_name()}.")
    elif importlib.util.find_spec("tensorboard") is None:
        # TensorFlow 2.21 no longer installs TensorBoard with itself.
        print("Notice: TensorBoard logging skipped: the tensorboard package is not installed (pip install tensorboard).")
    else:
        callbacks.append(keras.callbacks.TensorBoard(paths.logs))
    return callbacks
