"""Training runs: run directory, data, model, callbacks, distribution, `model.fit`, metrics.json.

One module a concern: `run_directory` (the files below, resuming, the command record), `data`
(a FER2013 CSV or an image folder, and `model.fit`'s inputs), `initialization` (fine-tuning
from trained weights), `distribution` (backend and `tf.distribute`), `recipe`
(network, optimizer, schedule, loss), `callbacks`, and `fit` (the run itself).

`train(config, output_dir)` is what `python train.py` runs. One run directory holds one run:

    config.yaml     the resolved configuration (what makes two runs the same run)
    command.txt     every invocation's command line, one per start or resume
    class_names.json  the classes in output order (predict.py and export.py read it)
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

from keras_fer.training.callbacks import (
    AtomicModelCheckpoint,
    CallbackStateBackup,
    EpochThroughput,
    HistoryLog,
    LearningRateLog,
    TimeLimit,
    make_callbacks,
)
from keras_fer.training.data import fit_inputs
from keras_fer.training.fit import read_history, summary_line, train
from keras_fer.training.recipe import compile_model, make_model, model_build_arguments
from keras_fer.training.run_directory import RunError, RunPaths, command_line, first_difference

__all__ = [
    "AtomicModelCheckpoint",
    "CallbackStateBackup",
    "EpochThroughput",
    "HistoryLog",
    "LearningRateLog",
    "RunError",
    "RunPaths",
    "TimeLimit",
    "command_line",
    "compile_model",
    "first_difference",
    "fit_inputs",
    "make_callbacks",
    "make_model",
    "model_build_arguments",
    "read_history",
    "summary_line",
    "train",
]
