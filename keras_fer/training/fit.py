"""The run itself: `train(config, output_dir)` builds everything, calls `model.fit`, writes metrics.json."""

import contextlib
import csv
import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_fer import files
from keras_fer import data as fer_data
from keras_fer.training.callbacks import make_callbacks, to_json_number
from keras_fer.training.data import TrainingData, check_data_source, checked_data, fit_inputs, synthetic_split_sizes
from keras_fer.training.distribution import (
    adapt_to_multi_worker,
    backend_name,
    is_chief,
    make_strategy,
    thread_settings,
)
from keras_fer.training.initialization import assign_initial_weights
from keras_fer.training.recipe import (
    check_model,
    compile_model,
    make_model,
    model_build_arguments,
    train_steps_per_epoch,
)
from keras_fer.training.run_directory import (
    RunError,
    RunPaths,
    code_version,
    epochs_in_backup,
    prepare_run_directory,
    record_command,
)
from keras_fer.training.teacher import distillation_inputs, load_teacher


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
    if not synthetic:  # a real file or folder is checked before the run directory is touched
        data = checked_data(config, paths)
    run_classes = fer_data.class_names(config.data.labels) if synthetic else data.class_names
    check_model(config, len(run_classes))
    teacher = load_teacher(config.training.teacher, run_classes) if config.training.teacher is not None else None
    resume = prepare_run_directory(paths, config, overwrite, dry_run)
    print(f"Keras {keras.__version__}, backend {backend_name()}; run directory {paths.root}"
          + (" (resuming)" if resume else ""))
    if command is not None and not dry_run:
        record_command(paths, command, resume, version, thread_settings())
    if synthetic and dry_run:
        # The sizes the synthetic data set will have once generated.
        data = TrainingData("synthetic (generated when training)", synthetic_split_sizes(config),
                            fer_data.class_names(config.data.labels))
    elif synthetic:
        data = checked_data(config, paths)
    if not dry_run:
        # Beside the models: the class names of a folder's own classes are nowhere else.
        files.write_text(paths.class_names, json.dumps(list(data.class_names)) + "\n")
    steps_per_epoch = train_steps_per_epoch(config, data.sizes)

    keras.mixed_precision.set_global_policy(config.runtime.mixed_precision)
    epochs_done = epochs_in_backup(paths) if resume else 0
    seed = invocation_seed(config.training.seed, epochs_done)
    if epochs_done:
        print(f"Continuing after epoch {epochs_done}: shuffling and augmentation seeded with {seed} "
              f"(seed {config.training.seed} and the epoch), so that no epoch replays an earlier one's batches")
    keras.utils.set_random_seed(seed)
    class_names = data.class_names

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = make_model(config, len(class_names))
        if config.training.init is not None:
            print(assign_initial_weights(model, config.training.init, class_names,
                                         model_build_arguments(config, len(class_names))))
        compile_model(model, config, steps_per_epoch)
    callbacks = make_callbacks(config, paths)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    devices = f"strategy {config.runtime.strategy} ({replicas} replica(s))" if strategy is not None else "one device"
    print(f"Model {model.name}: {model.count_params():,} parameters; policy {config.runtime.mixed_precision}, "
          f"jit_compile {config.runtime.jit_compile}, {devices}")
    if dry_run:
        return dry_run_report(config, model, callbacks, data.sizes, replicas, steps_per_epoch)

    inputs = fit_inputs(config, data, seed) if teacher is None else distillation_inputs(config, data, teacher)
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
    metrics = final_metrics(config, paths, data, history, replicas, version)
    metrics["wall_time_seconds"] = round(time.monotonic() - started, 1)
    metrics["resumable"] = paths.backup.exists()
    metrics["seed_this_invocation"] = seed
    files.write_text(paths.metrics, json.dumps(metrics, indent=2) + "\n")
    print(summary_line(metrics, config.training.monitor))
    if metrics["resumable"]:
        print(f"The time limit stopped the run after {metrics['epochs_run']} of {config.training.epochs} epochs; "
              f"its backup is kept in {paths.backup}: run the same command again to continue it.")
    return metrics


def invocation_seed(seed, epochs_done):
    """The seed of an invocation's shuffling and augmentation, when it starts after `epochs_done` epochs.

    The run's own seed for a new run. A resumed run needs another: a new process starts the
    `tf.data` shuffle and the augmentation's seed state over (neither is in the backup), so
    with the run's seed its first epoch would replay the run's first epoch, batch for batch and
    augmentation for augmentation. In runs/fer2013_wide, an epoch that replayed the epoch just
    before it gave 71.0% training accuracy against 65.6% and 66.1% around it. The seed is drawn
    from the run's seed and the epoch, so that resuming at the same epoch repeats itself.

    Example:
    >>> invocation_seed(47, 0), invocation_seed(47, 18) == invocation_seed(47, 18) != invocation_seed(47, 19)
    (47, True)
    """
    if epochs_done == 0:
        return seed
    return int(np.random.SeedSequence([seed, epochs_done]).generate_state(1)[0] >> 1)  # 31 bits: any seed API


def final_metrics(config, paths, data, history, replicas, version):
    """Evaluates best.keras on the validation and test splits; the metrics.json dict."""
    epochs = read_history(paths.history) if paths.history.exists() else []
    if not epochs or not paths.best_model.exists():
        raise RunError(f"training stopped before an epoch finished with a {config.training.monitor} "
                       f"(a NaN loss?); see {paths.root}")
    monitor = config.training.monitor
    values = [row[monitor] for row in epochs]
    best_index = values.index(max(values) if monitor.endswith("accuracy") else min(values))
    best_model = keras.saving.load_model(paths.best_model)
    test_split = config.data.test_split
    return {
        "best_epoch": int(epochs[best_index]["epoch"]) + 1,
        f"best_{monitor}": values[best_index],
        "epochs_run": len(epochs),
        "stopped_early": len(epochs) < config.training.epochs,
        "validation": data.evaluate(best_model, config, config.data.validation_split),
        "test": (data.evaluate(best_model, config, test_split) if test_split in data.sizes
                 else {"split": test_split, "status": "absent", "note": f"{data.path} has no {test_split} faces"}),
        "models": {"best": str(paths.best_model), "last": str(paths.last_model)},
        "data": {"path": str(data.path), "splits": data.sizes, "class_names": list(data.class_names)},
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
