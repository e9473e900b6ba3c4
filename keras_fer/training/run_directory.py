"""The run directory: its files, the check that it may hold this run, and the command record."""

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from keras_fer import config as config_lib
from keras_fer import files

# Entries of a run directory that `--overwrite` removes; anything else is left alone.
RUN_ENTRIES = (
    "config.yaml", "command.txt", "class_names.json", "best.keras", "last.keras", "history.csv", "metrics.json",
    "logs", "backup", "data", "workers",
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
        self.class_names = self.root / "class_names.json"
        self.best_model = self.root / "best.keras"
        self.last_model = self.root / "last.keras"
        self.history = self.root / "history.csv"
        self.metrics = self.root / "metrics.json"
        self.logs = self.root / "logs"
        self.backup = self.root / "backup"
        self.synthetic_data = self.root / "data" / "synthetic_fer2013.csv"


def prepare_run_directory(paths, config, overwrite=False, dry_run=False):
    """Checks that `paths.root` may hold this run; creates it and writes config.yaml.

    Returns:
        True when an unfinished run of the same configuration is there to resume: one that was
        interrupted, or that its time limit stopped with epochs left (its backup kept).
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
        # A run its time limit stopped with epochs left keeps its backup beside metrics.json: it continues.
        if paths.metrics.exists() and not paths.backup.exists():
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


def epochs_in_backup(paths):
    """The epochs a run's backup holds (the metadata Keras' `BackupAndRestore` writes), 0 without one.

    Raises:
        RunError: the metadata file exists but does not say its epoch.
    """
    metadata = paths.backup / "training_metadata.json"
    if not metadata.exists():
        return 0
    try:
        epochs = json.loads(metadata.read_text())["epoch"]
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(f"{metadata}: the backup's metadata does not say its epoch ({error!r}); "
                       f"pass --overwrite to train the run again") from None
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise RunError(f"{metadata}: the backup's epoch must be a count of epochs. Received: {epochs!r}")
    return epochs


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


def record_command(paths, command, resume, version, threads):
    """Appends `command` to command.txt under a comment: time, start or resume, code version, load, `threads`.

    The load says what else ran on the machine as the invocation began, which a run's speed (and
    its `train_images_per_second`) depends on.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(paths.command, "a") as file:
        file.write(f"# {stamp} {'resume' if resume else 'start'} at {version}; {machine_load()}; {threads}\n{command}\n")


def machine_load():
    """`load 1.97 1.10 0.52 (1, 5, 15 min) on 2 CPUs`: the load averages and the CPUs this process may use."""
    one, five, fifteen = os.getloadavg()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {cpus} CPUs"


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
