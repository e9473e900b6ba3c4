"""A real two-worker `MultiWorkerMirroredStrategy` cluster on this machine, checked end to end.

Two `train.py` processes, each with a two-worker `TF_CONFIG` on loopback ports, train one small
model on synthetic faces (the quickstart configuration made tiny, augmentation off so that runs
can be compared). The script checks and reports:

1. both workers end with the same weights, moving statistics included (the chief's
   `last.keras` against worker 1's);
2. the two-worker run trains like one worker at the same global batch (the same faces in every
   step, the same initial weights): every epoch's training loss within LOSS_TOLERANCE
   (relative) of the one-worker run's, and the final validation accuracy within
   ACCURACY_TOLERANCE. They do not compute the same function: each worker's BatchNormalization
   normalizes its own half of the batch, as Keras does, and a small network's weights then
   drift apart within a few dozen steps, so the weights' distance is reported, not checked;
3. killing worker 1 in the middle of an epoch, then starting both again with the same command,
   resumes from the `BackupAndRestore` backup: the epochs done before the kill are not run
   again, and the run finishes with every epoch in history.csv once.

    python tools/multi_worker_check.py --report docs/results/multi_worker.json

It takes about 5 minutes on 2 cores. Every worker's log is kept under --work-dir.
"""

import argparse
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = [
    "model.input_size=32", "model.width=4", "model.augmentation=null", "training.batch_size=32",
    "training.optimizer.name=sgd", "training.optimizer.learning_rate=0.01", "training.verbose=2",
    "runtime.strategy=multi_worker",
    "data.synthetic.train_per_class=160", "data.synthetic.validation_per_class=8",
    "data.synthetic.test_per_class=8",
]
# Two workers against one: relative difference of every epoch's training loss, and the absolute
# difference of the final validation accuracy (56 faces: one standard error is about 0.06).
LOSS_TOLERANCE = 0.1
ACCURACY_TOLERANCE = 0.1


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("localhost", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def start_worker(index, ports, output_dir, epochs, log_path):
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    command = [sys.executable, "train.py", "--config", "configs/quickstart.yaml", "--output-dir", str(output_dir),
               *[argument for override in [*OVERRIDES, f"training.epochs={epochs}"] for argument in ("--set", override)]]
    env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    log = open(log_path, "w")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), command, log


class WorkerFailed(Exception):
    """A worker exited with an error; `errors` holds each worker's last error line."""

    def __init__(self, statuses, errors):
        super().__init__(f"worker exit statuses {statuses}")
        self.statuses, self.errors = statuses, errors


def last_error_line(log_path):
    lines = [line for line in Path(log_path).read_text().splitlines() if "Error:" in line or "error:" in line]
    return lines[-1][:400] if lines else None


def run_cluster(output_dir, epochs, logs, workers=2):
    ports = free_ports(workers)
    started = [start_worker(index, ports, output_dir, epochs, logs / f"worker{index}.log") for index in range(workers)]
    statuses = [process.wait(timeout=900) for process, _, _ in started]
    for _, _, log in started:
        log.close()
    if any(statuses):
        raise WorkerFailed(statuses, [last_error_line(logs / f"worker{index}.log") for index in range(workers)])
    return started[0][1]


def weights_of(model_path):
    import keras

    import keras_fer  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(model_path, compile=False)
    return {variable.path: keras.ops.convert_to_numpy(variable) for variable in model.weights}


def relative_distance(a, b):
    import numpy as np

    difference = sum(float(np.sum((a[key] - b[key]) ** 2)) for key in a)
    norm = sum(float(np.sum(a[key] ** 2)) for key in a)
    return (difference / norm) ** 0.5


def history(run_dir):
    """The rows of a run's history.csv (none before the first epoch ends)."""
    if not (run_dir / "history.csv").exists():
        return []
    with open(run_dir / "history.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, default=REPO_ROOT / "docs" / "results" / "multi_worker.json")
    parser.add_argument("--work-dir", type=Path, help="where the runs and logs go (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="multi_worker_"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "work_dir": str(work),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "overrides": OVERRIDES,
              "load_average_at_start": list(os.getloadavg())}

    # 1. Two workers, 3 epochs.
    two = work / "two_workers"
    (work / "logs_two").mkdir(exist_ok=True)
    try:
        report["worker_command"] = " ".join(run_cluster(two, 3, work / "logs_two"))
    except WorkerFailed as failure:
        report.update(two_workers_failed={"exit_statuses": failure.statuses, "last_errors": failure.errors},
                      all_checks_pass=False, finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return 1
    chief, worker1 = weights_of(two / "last.keras"), weights_of(two / "workers" / "worker-1" / "last.keras")
    report["workers_same_weights"] = {
        "max_abs_difference": max(float(abs(chief[key] - worker1[key]).max()) for key in chief),
        "identical": all((chief[key] == worker1[key]).all() for key in chief),
    }

    # 2. One worker (a one-worker cluster: the same strategy and code path), same global batch.
    one = work / "one_worker"
    (work / "logs_one").mkdir(exist_ok=True)
    run_cluster(one, 3, work / "logs_one", workers=1)
    alone = weights_of(one / "last.keras")
    two_history, one_history = history(two), history(one)
    distance = relative_distance(alone, chief)
    accuracy_gap = abs(two_history[-1]["val_accuracy"] - one_history[-1]["val_accuracy"])
    loss_gap = max(abs(pair["loss"] - single["loss"]) / single["loss"]
                   for pair, single in zip(two_history, one_history))
    report["two_workers_vs_one_worker"] = {
        "relative_weight_distance": round(distance, 5),
        "training_loss_by_epoch": {"two_workers": [row["loss"] for row in two_history],
                                   "one_worker": [row["loss"] for row in one_history]},
        "max_relative_loss_difference": round(loss_gap, 4), "loss_tolerance": LOSS_TOLERANCE,
        "final_val_accuracy": {"two_workers": two_history[-1]["val_accuracy"],
                               "one_worker": one_history[-1]["val_accuracy"]},
        "final_loss": {"two_workers": two_history[-1]["loss"], "one_worker": one_history[-1]["loss"]},
        "val_accuracy_tolerance": ACCURACY_TOLERANCE,
        "agree": loss_gap <= LOSS_TOLERANCE and accuracy_gap <= ACCURACY_TOLERANCE,
    }

    # 3. Kill worker 1 during epoch 3 of 4, then restart both with the same command.
    resumed = work / "killed_and_resumed"
    logs = work / "logs_kill"
    logs.mkdir(exist_ok=True)
    ports = free_ports(2)
    started = [start_worker(index, ports, resumed, 4, logs / f"worker{index}_first.log") for index in range(2)]
    while len(history(resumed)) < 2:
        if any(process.poll() is not None for process, _, _ in started):
            raise SystemExit(f"a worker ended before the kill; see {logs}")
        time.sleep(0.1)
    time.sleep(history(resumed)[-1]["train_seconds"] / 2)  # half way into epoch 3
    started[1][0].send_signal(signal.SIGKILL)
    epochs_before_kill = len(history(resumed))
    try:  # the chief cannot finish the epoch without its peer
        started[0][0].wait(timeout=60)
    except subprocess.TimeoutExpired:
        started[0][0].kill()
    for process, _, log in started:
        process.wait()
        log.close()
    ports = free_ports(2)
    restarted = [start_worker(index, ports, resumed, 4, logs / f"worker{index}_restart.log") for index in range(2)]
    statuses = [process.wait(timeout=900) for process, _, _ in restarted]
    for _, _, log in restarted:
        log.close()
    final = history(resumed)
    restart_log = (logs / "worker0_restart.log").read_text()
    report["kill_and_resume"] = {
        "epochs_in_history_at_kill": epochs_before_kill,
        "restart_exit_statuses": statuses,
        "restart_says_resuming": "(resuming)" in restart_log,
        "epochs_run_after_restart": sum(1 for line in restart_log.splitlines() if re.fullmatch(r"Epoch \d+/4", line)),
        "history_epochs": [int(row["epoch"]) for row in final],
        "resumed_correctly": statuses == [0, 0] and [int(row["epoch"]) for row in final] == [0, 1, 2, 3]
        and "(resuming)" in restart_log,
    }
    report["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["load_average_at_end"] = list(os.getloadavg())
    report["all_checks_pass"] = (report["workers_same_weights"]["identical"]
                                 and report["two_workers_vs_one_worker"]["agree"]
                                 and report["kill_and_resume"]["resumed_correctly"])
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["all_checks_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
