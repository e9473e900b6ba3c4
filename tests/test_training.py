"""train.py and keras_fer.training: bad input, paper dry run, resume after SIGKILL, mirrored, quickstart."""

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_fer.config import load_config, to_yaml
from keras_fer.data import read_fer2013, write_synthetic_fer2013
from keras_fer.training import CallbackStateBackup, RunError, RunPaths, command_line, read_history, train
from keras_fer.training.fit import invocation_seed
from keras_fer.training.run_directory import prepare_run_directory

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# For the tests of the training machinery (resume, devices, errors): a plain ResNet34 at width 4,
# input 32, whose graph traces in a fraction of the time of the masked one. The masked network
# is trained by the quickstart test and built at paper size by the dry-run test.
TINY = [
    "model.input_size=32", "model.width=4", "model.use_masks=false", "model.augmentation=null",
    "training.batch_size=16",
    "training.verbose=2", "training.optimizer.learning_rate=0.01",
]


def run_train(*arguments, **popen):
    """Starts `python train.py ...` in the repository, unbuffered so its progress can be read live."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "train.py", *arguments], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def dry_run(config, data, output_dir):
    """The JSON report of `python train.py --dry-run` for a config file and a CSV."""
    process = run_train("--config", config, "--data", data, "--output-dir", str(output_dir), "--dry-run")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return json.loads(output[output.index("\n{\n") + 1:])


def tiny_config(*overrides):
    return load_config(CONFIGS / "quickstart.yaml", TINY + list(overrides))


# --- bad input: a clear error before any work, nothing overwritten -------------------------------


def test_missing_data_file_is_an_error_before_the_run_directory_exists(tmp_path):
    config = tiny_config(f"data.source={tmp_path / 'fer2013.csv'}")
    with pytest.raises(RunError, match=r"data file .*fer2013\.csv not found \(set it with --data PATH"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("model.width=-3", "model: `width` must be a positive integer. Received: width=-3"),
    ("model.mask_width=0", r"model: `mask_width` must be a number > 0. Received: mask_width=0"),
])
def test_a_network_the_model_section_cannot_build_is_an_error_before_the_run_directory_is_touched(
        tmp_path, override, message):
    # A finished run in the directory stays as it was, even with overwrite.
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    for source in ("synthetic", str(write_synthetic_fer2013(tmp_path / "fer2013.csv", {"Training": 2, "PublicTest": 1},
                                                             seed=1))):
        with pytest.raises(RunError, match=message):
            train(tiny_config(override, f"data.source={source}"), run, overwrite=True)
    assert [path.name for path in run.iterdir()] == ["metrics.json"]


def test_data_file_without_a_validation_split_or_not_fer2013_is_an_error_before_work(tmp_path):
    only_training = write_synthetic_fer2013(tmp_path / "train_only.csv", {"Training": 1}, seed=1)
    with pytest.raises(RunError, match=r"train_only\.csv has no PublicTest rows \(data\.validation_split\)"):
        train(tiny_config(f"data.source={only_training}"), tmp_path / "run")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunError, match=r"not a FER2013 CSV: .*other\.csv:1"):
        train(tiny_config(f"data.source={tmp_path / 'other.csv'}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_output_directory_holding_something_else_is_left_alone(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"is not empty and holds no run \(notes\.txt\).*--overwrite"):
        train(tiny_config(), tmp_path / "run")
    assert [path.name for path in (tmp_path / "run").iterdir()] == ["notes.txt"]


def test_output_directory_holding_a_different_or_finished_run_is_an_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    earlier = tiny_config("training.epochs=3")
    (run / "config.yaml").write_text(to_yaml(earlier))
    (run / "best.keras").write_text("an earlier model")
    with pytest.raises(RunError, match=r"holds a different run \(training\.epochs: 3 in the directory, 8 now\)"):
        train(tiny_config(), run)
    (run / "metrics.json").write_text("{}")
    with pytest.raises(RunError, match=r"holds a finished run of this configuration .* --overwrite"):
        train(earlier, run)
    assert (run / "best.keras").read_text() == "an earlier model"


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  optimizer:\n    lr: 0.1\n")
    process = run_train("--config", str(config), "--output-dir", str(tmp_path / "run"))
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "train.py: error: training.optimizer.lr: unknown key" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()


# --- the paper's configuration, built but not trained ----------------------------------------------


def test_paper_dry_run_builds_the_papers_model_optimizer_and_callbacks(tmp_path):
    data = write_synthetic_fer2013(tmp_path / "fer2013.csv", {"Training": 2, "PublicTest": 1}, seed=1)
    report = dry_run("configs/paper.yaml", data, tmp_path / "run")
    model = report["model"]
    assert model["backbone_input"] == [224, 224, 3] and model["input_shape"] == [None, 48, 48, 1]
    assert model["output_shape"] == [None, 7]
    assert model["parameters"] == pytest.approx(137.9e6, rel=0.002)  # the spec's reference count
    assert model["masks"] == ["stage1_mask", "stage2_mask", "stage3_mask", "stage4_mask"]
    assert report["optimizer"]["class"] == "SGD"
    assert report["optimizer"]["learning_rate"] == pytest.approx(1e-4)
    assert report["optimizer"]["momentum"] == pytest.approx(0.9)
    assert report["optimizer"]["weight_decay"] == pytest.approx(1e-3)
    assert report["optimizer"]["nesterov"] is False
    assert report["fit"] == {"batch_size": 48, "epochs": 50, "replicas": 1, "train_split": "Training",
                             "validation_split": "PublicTest"}
    assert report["reduce_lr"] == {"monitor": "val_accuracy", "factor": pytest.approx(0.1), "patience": 2}
    assert report["early_stopping"] == {"monitor": "val_accuracy", "patience": 8, "restore_best_weights": True}
    for callback in ("BackupAndRestore", "AtomicModelCheckpoint", "HistoryLog", "TerminateOnNaN"):
        assert callback in report["callbacks"]
    assert report["data_splits"] == {"Training": 14, "PublicTest": 7}
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


# --- resume after SIGKILL ------------------------------------------------------------------------


def test_run_killed_in_its_second_epoch_resumes_where_it_stopped(tmp_path):
    data = write_synthetic_fer2013(tmp_path / "faces.csv", {"Training": 40, "PublicTest": 4}, seed=2)
    steps = 280 // 16  # whole batches only
    command = ["--config", "configs/quickstart.yaml", "--data", data, "--output-dir", str(tmp_path / "run"),
               "--set", "training.epochs=3", "--set", "data.test_split=PublicTest",
               *[argument for override in TINY for argument in ("--set", override)]]
    first = run_train(*command)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("Epoch 2/3"):
            first.send_signal(signal.SIGKILL)
            break
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, "".join(seen)
    epochs = [row["epoch"] for row in read_history(tmp_path / "run" / "history.csv")]
    assert epochs == [0], "the kill must land in the second epoch"

    second = run_train(*command)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    assert "(resuming)" in output and "Epoch 2/3" in output and "Epoch 1/3" not in output
    assert [row["epoch"] for row in read_history(tmp_path / "run" / "history.csv")] == [0, 1, 2]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["epochs_this_invocation"] == 2
    # The optimizer continued from the backup: 3 epochs of steps in all, not 2.
    import keras

    last = keras.saving.load_model(tmp_path / "run" / "last.keras")
    assert int(last.optimizer.iterations) == 3 * steps
    assert not (tmp_path / "run" / "backup").exists()
    # command.txt holds both invocations, each a shell line that repeats it.
    lines = (tmp_path / "run" / "command.txt").read_text().splitlines()
    assert [line.split()[2] for line in lines[::2]] == ["start", "resume"]
    # ... and what the machine was doing: its load and the threads TensorFlow computes with.
    cpus = len(os.sched_getaffinity(0))
    for comment in lines[::2]:
        assert re.search(rf"; load \d+\.\d\d \d+\.\d\d \d+\.\d\d \(1, 5, 15 min\) on {cpus} CPUs; "
                         r"TensorFlow threads: intra-op \d+.*, inter-op \d+", comment), comment
    assert lines[1] == lines[3] and lines[1].endswith("python " + " ".join(["train.py", *map(str, command)]))


def test_run_its_time_limit_stops_keeps_its_backup_and_the_same_command_continues_it(tmp_path):
    """A run longer than one session's budget: each invocation trains until the limit, the last finishes it."""
    import keras

    data = write_synthetic_fer2013(tmp_path / "faces.csv", {"Training": 8, "PublicTest": 2}, seed=4)
    # A limit every first batch overruns: each invocation trains one batch, then stops.
    config = tiny_config(f"data.source={data}", "training.epochs=2", "training.time_limit_minutes=0.000001")
    run = tmp_path / "run"
    first = train(config, run)
    assert first["epochs_run"] == 1 and first["stopped_early"] and first["resumable"]
    assert (run / "backup").is_dir() and (run / "metrics.json").exists()
    second = train(config, run)
    assert second["epochs_run"] == 2 and second["epochs_this_invocation"] == 1
    assert not second["stopped_early"] and not second["resumable"] and not (run / "backup").exists()
    assert [row["epoch"] for row in read_history(run / "history.csv")] == [0, 1]
    # The second invocation continued the first's optimizer: one step each.
    assert int(keras.saving.load_model(run / "last.keras").optimizer.iterations) == 2
    # ... and drew its own shuffling and augmentation, from the seed and the epoch it resumed at.
    assert first["seed_this_invocation"] == config.training.seed
    assert second["seed_this_invocation"] == invocation_seed(config.training.seed, 1) != config.training.seed
    with pytest.raises(RunError, match=r"holds a finished run of this configuration"):
        train(config, run)


def test_a_resumed_invocation_does_not_replay_the_first_epochs_batches_or_augmentations(tmp_path):
    """A new process rebuilds the shuffle and the augmentation's seed state from its seed: the run's seed would
    give a resumed invocation the run's first epoch again, face for face; the invocation's seed does not."""
    import keras

    from keras_fer.layers import FaceAugmentation
    from keras_fer.training import fit_inputs
    from keras_fer.training.data import checked_data

    data_path = write_synthetic_fer2013(tmp_path / "faces.csv", {"Training": 8, "PublicTest": 2}, seed=4)
    config = tiny_config(f"data.source={data_path}")
    data = checked_data(config, RunPaths(tmp_path / "run"))
    faces = keras.ops.convert_to_tensor(read_fer2013(data_path, usage="Training")[0][:8].astype("float32"))

    def first_epoch(seed):
        """What an invocation seeded with `seed` trains on first: the label order and one augmented batch."""
        keras.utils.set_random_seed(seed)
        train = fit_inputs(config, data, seed)["x"]
        labels = np.concatenate([batch_labels for _, batch_labels in train.as_numpy_iterator()])
        augmented = FaceAugmentation(name="augment")(faces, training=True)
        return labels, keras.ops.convert_to_numpy(augmented)

    seed = config.training.seed
    run_labels, run_augmented = first_epoch(invocation_seed(seed, 0))
    replay_labels, replay_augmented = first_epoch(seed)
    resumed_labels, resumed_augmented = first_epoch(invocation_seed(seed, 1))
    assert np.array_equal(run_labels, replay_labels) and np.array_equal(run_augmented, replay_augmented)
    assert not np.array_equal(resumed_labels, run_labels)
    assert not np.allclose(resumed_augmented, run_augmented, atol=1.0)


def test_a_backup_whose_metadata_lacks_its_epoch_is_an_error_naming_the_file(tmp_path):
    from keras_fer.training.run_directory import epochs_in_backup

    paths = RunPaths(tmp_path / "run")
    assert epochs_in_backup(paths) == 0
    paths.backup.mkdir(parents=True)
    (paths.backup / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    assert epochs_in_backup(paths) == 3
    (paths.backup / "training_metadata.json").write_text('{"batch": 0}')
    with pytest.raises(RunError, match=r"run/backup/training_metadata\.json: the backup's metadata does not say its epoch"):
        epochs_in_backup(paths)


def test_command_line_records_the_environment_that_changes_the_run_and_quotes_arguments():
    environ = {"KERAS_BACKEND": "jax", "TF_NUM_INTRAOP_THREADS": "1", "HOME": "/root"}
    line = command_line(["train.py", "--config", "my config.yaml", "--set", "a=b"], environ)
    pinned = len(os.sched_getaffinity(0)) < os.cpu_count()
    assert line.startswith("KERAS_BACKEND=jax TF_NUM_INTRAOP_THREADS=1 " + ("taskset -c " if pinned else "python"))
    assert line.endswith("python train.py --config 'my config.yaml' --set a=b") and "HOME" not in line


def test_callback_counters_survive_a_restart(tmp_path):
    import keras

    def callbacks():
        return {"reduce_lr": keras.callbacks.ReduceLROnPlateau(), "early": keras.callbacks.EarlyStopping()}

    before = callbacks()
    before["reduce_lr"].wait, before["reduce_lr"].best, before["reduce_lr"].cooldown_counter = 1, 0.75, 0
    before["early"].wait, before["early"].best, before["early"].best_epoch = 3, 0.8, 4
    CallbackStateBackup(tmp_path / "state.json", before).on_epoch_end(5)
    after = callbacks()
    for callback in after.values():
        callback.on_train_begin()  # resets, as fit does, before the restore
    CallbackStateBackup(tmp_path / "state.json", after).on_train_begin()
    assert (after["reduce_lr"].wait, after["reduce_lr"].best) == (1, 0.75)
    assert (after["early"].wait, after["early"].best, after["early"].best_epoch) == (3, 0.8, 4)


# --- distribution ----------------------------------------------------------------------------------

MIRRORED_DRIVER = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, ".")
import train

train.main(sys.argv[1:])
"""


def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    data = write_synthetic_fer2013(tmp_path / "faces.csv", {"Training": 8, "PublicTest": 4}, seed=3)
    overrides = TINY + ["training.epochs=2", "runtime.strategy=mirrored"]
    process = subprocess.run(
        [sys.executable, "-c", MIRRORED_DRIVER, "--config", "configs/quickstart.yaml", "--data", data,
         "--output-dir", str(tmp_path / "run"), *[a for o in overrides for a in ("--set", o)]],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "strategy mirrored (2 replica(s))" in process.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["epochs_run"] == 2
    # The file has no PrivateTest rows: reported absent, not replaced by another split.
    assert metrics["test"]["split"] == "PrivateTest" and metrics["test"]["status"] == "absent"
    assert all(math.isfinite(row["loss"]) for row in read_history(tmp_path / "run" / "history.csv"))


def test_chief_starts_where_the_other_workers_have_already_made_their_directories(tmp_path):
    """Workers start together; worker 1 may create <run>/workers/ before the chief looks at <run>."""
    (tmp_path / "run" / "workers" / "worker-1").mkdir(parents=True)
    assert prepare_run_directory(RunPaths(tmp_path / "run"), tiny_config()) is False  # a new run, not a resume
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "workers" / "worker-1").is_dir()
    (tmp_path / "other" / "notes").mkdir(parents=True)
    with pytest.raises(RunError, match="is not empty and holds no run"):
        prepare_run_directory(RunPaths(tmp_path / "other"), tiny_config())


def test_multi_worker_strategy_is_created_before_tensorflow_starts(tmp_path):
    """MultiWorkerMirroredStrategy fails once TensorFlow has run anything; a one-worker TF_CONFIG shows it."""
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}}
    data = write_synthetic_fer2013(tmp_path / "faces.csv", {"Training": 2, "PublicTest": 1}, seed=4)
    overrides = TINY + ["runtime.strategy=multi_worker"]
    process = subprocess.run(
        [sys.executable, "train.py", "--config", "configs/quickstart.yaml", "--data", data, "--dry-run",
         "--output-dir", str(tmp_path / "run"), *[a for o in overrides for a in ("--set", o)]],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "strategy multi_worker (1 replica(s))" in process.stdout


# --- the quick start learns --------------------------------------------------------------------------


def test_reduced_quickstart_learns_the_synthetic_faces_and_its_masks_train(tmp_path):
    """The quickstart recipe on half its data and 5 of its 8 epochs; chance is 1/7 = 14%.

    A frozen model stays near chance, and a mask branch that breaks the features (NaN, or
    W = -1 erasing them) stops training or leaves it near chance: the floor catches both. A
    mask branch cut off from the gradient (frozen, or stop_gradient) would still learn
    through the backbone, so the mask weights are also compared with their initial values.
    """
    import keras
    import numpy as np

    from keras_fer.training import make_model

    config = load_config(CONFIGS / "quickstart.yaml", [
        "data.synthetic.train_per_class=144", "data.synthetic.validation_per_class=48",
        "data.synthetic.test_per_class=48", "training.epochs=5", "training.verbose=2",
    ])
    metrics = train(config, tmp_path / "run")
    print(f"reduced quickstart: test accuracy {metrics['test']['accuracy']:.3f}, {metrics['wall_time_seconds']} s")
    assert metrics["test"]["split"] == "PrivateTest" and metrics["test"]["num_images"] == 336
    assert metrics["test"]["accuracy"] >= 0.35

    initial = []
    for _ in range(2):  # the same seed gives the same initial weights (checked, then relied on)
        keras.utils.set_random_seed(config.training.seed)
        initial.append(make_model(config, num_classes=7))
    trained = keras.saving.load_model(tmp_path / "run" / "best.keras")
    for stage in range(1, 5):
        name = f"stage{stage}_mask"
        before, again = (model.get_layer(name).trainable_weights for model in initial)
        after = trained.get_layer(name).trainable_weights
        assert after and all(np.array_equal(a, b) for a, b in zip(before, again))
        change = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(after, before))
        assert change > 1e-3, f"{name} did not train"
