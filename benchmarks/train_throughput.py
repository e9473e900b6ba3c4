"""Training throughput: images/s of one optimizer step, the FLOP/s it reaches, and its share of
the FLOP/s of a large float32 matrix product measured in the same run (the figure of merit).

For the paper configuration (`configs/paper.yaml`, 224x224, width 64, at a smaller batch
than its 48 so that a row takes seconds, not minutes) and the CPU configuration
(`configs/fer2013_cpu.yaml`, its own batch), each row builds and compiles the model exactly
as `train.py` does (`keras_fer.training.make_model` / `compile_model`: SGD with momentum,
augmentation inside the model) with one set of speed options, and runs `model.fit` on
fixed in-memory batches (or, in the `fer2013_file` rows, on the training pipeline reading the
real CSV). A callback times every step; the first steps (tracing, XLA compilation, oneDNN
kernel selection: 2 at the CPU size, 1 at the paper size) are excluded and the median of the
next ones (5 at the CPU size, 3 at the paper size) is reported.

Every row runs in a fresh process, because the options are process-wide: dtype policy
(`mixed_bfloat16`), XLA (`jit_compile`), oneDNN (`TF_ENABLE_ONEDNN_OPTS`) and the thread pools.

FLOPs per training image are counted from the graph by TensorFlow's profiler
(`tf.compat.v1.profiler`, float_ops, multiplies and adds counted separately) on the traced
forward-and-gradient computation of one face (the loss's gradient with respect to every
trainable weight); the optimizer's update (a few FLOPs per weight) is not counted. The
forward count alone is reported beside it.

The figure of merit divides that FLOP/s by the float32 FLOP/s of a 4096x4096
`tf.linalg.matmul` measured in the row's own process right after its steps, so that both
numbers see the same threads and the same competing load on a shared machine. The matmul of
fresh processes before and after all rows (float32 and bfloat16), and the ratio to its best,
are reported too.

    python -m benchmarks.train_throughput                # about 10 minutes on 2 cores
    python -m benchmarks.train_throughput --slow-rows    # also the paper-size XLA row (+10 minutes)
    python -m benchmarks.train_throughput --quick        # smoke run: two rows per size, batch 1 at 224
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402

MODULE = "benchmarks.train_throughput"
BASELINE = {"jit_compile": False, "mixed_precision": "float32", "onednn": True, "intra_op_threads": 0,
            "inter_op_threads": 0, "data": "memory"}
# Rows per configuration: each changes the baseline (what `train.py` does on a CPU) in one way.
ROWS = {
    "paper": [{}, {"mixed_precision": "mixed_bfloat16"}],
    "cpu": [
        {},
        {"jit_compile": True},
        {"mixed_precision": "mixed_bfloat16"},
        {"onednn": False},
        {"intra_op_threads": 1, "inter_op_threads": 1},
        {"data": "fer2013_file"},
    ],
}
# Rows left out unless --slow-rows: XLA compiles the step for minutes and then runs it several
# times slower than the baseline on this CPU (see the CPU rows), so at the paper size one
# such row would take most of the 20-minute budget of `python -m benchmarks`.
SLOW_ROWS = {
    "paper": [{"jit_compile": True}],
    "cpu": [{"mixed_precision": "mixed_bfloat16", "jit_compile": True}],
}
# (warm-up steps, timed steps) per configuration, full and --quick.
STEPS = {"paper": (1, 3), "cpu": (2, 5)}
QUICK_STEPS = (1, 2)
MATMUL_SIZE = 4096


# ---------------------------------------------------------------------------------------------
# Child processes: one measurement each.


def load_config(name, batch_size, settings):
    """The training configuration `name` with this row's precision and XLA (and batch size, if given)."""
    from keras_fer import config as config_lib

    overrides = [f"runtime.jit_compile={str(settings['jit_compile']).lower()}",
                 f"runtime.mixed_precision={settings['mixed_precision']}", f"data.source={common.DATA_FILE}"]
    overrides += [f"training.batch_size={batch_size}"] if batch_size else []
    return config_lib.load_config(common.REPO_ROOT / common.CONFIGS[name], overrides)


def class_names(config):
    """The classes of `config`'s label mode, which shape the model's head and its targets."""
    from keras_fer import data

    if config.data.labels not in data.LABEL_MODES:
        raise ValueError(f"data.labels={config.data.labels!r}: fixed batches take the classes of a CSV label mode "
                         f"({', '.join(data.LABEL_MODES)}), not an image folder's; time the same network with "
                         f"--set data.labels=fer2013 (the class count barely changes a step's cost)")
    return data.class_names(config.data.labels)


def compiled_model(config):
    """The model and optimizer exactly as `train.py` builds them for `config`."""

    from keras_fer import training

    keras.mixed_precision.set_global_policy(config.runtime.mixed_precision)
    keras.utils.set_random_seed(config.training.seed)
    model = training.make_model(config, len(class_names(config)))
    # Steps per epoch only shape a cosine schedule, which does not change a step's cost.
    training.compile_model(model, config, steps_per_epoch=config.training.steps_per_epoch or 100)
    return model


class StepTimer(keras.callbacks.Callback):
    """Records the wall time of every training step (from the end of the one before)."""

    def __init__(self, warmup):
        super().__init__()
        self.warmup = warmup

    def on_train_begin(self, logs=None):
        self.seconds, self.last = [], time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now
        if len(self.seconds) == self.warmup:
            self.cpu_at_warmup_end = time.process_time()


def training_inputs(config, settings, steps):
    """A repeating dataset of training batches: fixed faces in memory, or the real CSV pipeline."""

    from keras_fer import training

    if settings["data"] == "fer2013_file":
        config.training.steps_per_epoch = steps  # fit_inputs repeats the pipeline when this is set
        return training.fit_inputs(config, common.DATA_FILE)["x"]
    rng = np.random.default_rng(0)
    batch = config.training.batch_size
    num_classes = len(class_names(config))
    faces = rng.integers(0, 256, (batch, 48, 48, 1), dtype=np.uint8)
    labels = rng.integers(0, num_classes, (batch,), dtype=np.int32)
    # Vote targets are a distribution over the classes, as the loss that `compile_model` picks expects.
    targets = np.eye(num_classes, dtype=np.float32)[labels] if config.data.targets == "votes" else labels
    return tf.data.Dataset.from_tensors((faces, targets)).cache().repeat()


def measure_step(payload):
    """Times `model.fit` steps for one row; returns its per-step seconds and first-step time."""

    settings = payload["settings"]
    if settings["intra_op_threads"]:
        tf.config.threading.set_intra_op_parallelism_threads(settings["intra_op_threads"])
    if settings["inter_op_threads"]:
        tf.config.threading.set_inter_op_parallelism_threads(settings["inter_op_threads"])
    config = load_config(payload["config"], payload["batch_size"], settings)
    model = compiled_model(config)
    steps = payload["warmup"] + payload["steps"]
    timer = StepTimer(payload["warmup"])
    model.fit(training_inputs(config, settings, steps), steps_per_epoch=steps, epochs=1, verbose=0,
              callbacks=[timer])
    timed = timer.seconds[payload["warmup"]:]
    return {"first_step_seconds": round(timer.seconds[0], 2), "warmup_steps": payload["warmup"],
            "step": common.summarize_seconds(timed),
            "cores_busy": round((time.process_time() - timer.cpu_at_warmup_end) / sum(timed), 2),
            # In the same process and moment as the steps: the same threads and the same competition.
            "matmul_same_process": measure_matmul({"size": MATMUL_SIZE, "repeats": 3})}


def count_flops(payload):
    """Forward and forward+gradient FLOPs of one face, counted from the traced graphs."""

    config = load_config(payload["config"], 1, BASELINE)
    model = compiled_model(config)

    def graph_flops(function, *specs):
        graph = tf.function(function).get_concrete_function(*specs).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops

    def gradients(faces, labels):
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(labels, model(faces, training=True))
        return tape.gradient(loss, model.trainable_variables)

    face = tf.TensorSpec((1, 48, 48, 1), tf.float32)
    return {
        "parameters": model.count_params(),
        "backbone_input": list(model.get_layer("stem_conv").input.shape[1:]),
        "width": config.model.width,
        "forward_flops_per_image": graph_flops(lambda faces: model(faces, training=False), face),
        "training_flops_per_image": graph_flops(gradients, face, tf.TensorSpec((1,), tf.int32)),
    }


def measure_matmul(payload):
    """FLOP/s of an n x n matrix product (2 n^3 FLOPs), best of `repeats`, per dtype."""

    size, result = payload["size"], {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal((size, size), dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
        product = tf.function(lambda: tf.linalg.matmul(a, b))
        product().numpy()  # warm-up: kernel selection
        best = float("inf")
        for _ in range(payload["repeats"]):
            start = time.perf_counter()
            product().numpy()
            best = min(best, time.perf_counter() - start)
        result[dtype] = {"seconds_best": round(best, 4), "flops_per_second": round(2 * size**3 / best)}
    return result


CHILD_TASKS = {"step": measure_step, "flops": count_flops, "matmul": measure_matmul}


# ---------------------------------------------------------------------------------------------
# The parent: rows, FLOP/s and the ratio.


def row_environment(settings):
    """Environment variables a row needs before TensorFlow starts."""
    return {"TF_ENABLE_ONEDNN_OPTS": "1" if settings["onednn"] else "0"}


def row_name(config, changes):
    changed = ", ".join(f"{key}={value}" for key, value in changes.items())
    return f"{config}: {changed or 'baseline (train.py defaults on a CPU)'}"


def run(args):
    """Measures every row; returns the report."""

    report = common.report_header(["keras_fer", "configs", "benchmarks"], tf, keras, np)
    report["definitions"] = {
        "images_per_second": "batch size / median wall time of one model.fit step (SGD momentum), warm-up excluded",
        "training_flops_per_image": "float_ops of the traced forward + gradient graph of one face (tf.compat.v1.profiler); "
                                    "optimizer update not counted",
        "flops_per_second": "images_per_second * training_flops_per_image",
        "figure_of_merit": f"flops_per_second / float32 FLOP/s of a {MATMUL_SIZE}x{MATMUL_SIZE} tf.linalg.matmul "
                           "measured in the row's own process right after its steps (same threads, same load)",
        "figure_of_merit_vs_best_matmul": "flops_per_second / the best float32 matmul FLOP/s of the whole run "
                                          "(before and after the rows, in fresh processes)",
        "cores_busy": "process CPU time / wall time over the timed steps (2 = both cores)",
        "baseline": BASELINE,
    }
    matmul_payload = {"size": MATMUL_SIZE, "repeats": 3 if args.quick else 5}
    matmul_runs = [common.run_child(MODULE, {"task": "matmul", **matmul_payload})]
    print(f"matmul: {matmul_runs[0]}", flush=True)
    batches = {"paper": args.paper_batch_size, "cpu": args.cpu_batch_size}
    report["configurations"], rows = {}, []
    for config in args.configs:
        flops = common.run_child(MODULE, {"task": "flops", "config": config})
        flops["batch_size"] = batches[config] or load_config(config, None, BASELINE).training.batch_size
        flops["config_file"] = common.CONFIGS[config]
        report["configurations"][config] = flops
        print(f"{config}: {flops}", flush=True)
        rows_here = ROWS[config][:2] if args.quick else ROWS[config] + (SLOW_ROWS[config] if args.slow_rows else [])
        for changes in rows_here:
            settings = {**BASELINE, **changes}
            warmup, steps = QUICK_STEPS if args.quick else STEPS[config]
            payload = {"task": "step", "config": config, "batch_size": flops["batch_size"], "settings": settings,
                       "warmup": warmup, "steps": steps}
            row = {"name": row_name(config, changes), "config": config, "batch_size": flops["batch_size"],
                   "settings": settings, "load_average_at_start": common.load_average(),
                   **common.run_child(MODULE, payload, row_environment(settings), args.row_timeout)}
            rows.append(row)
            print(f"{row['name']}: {row.get('step', row.get('error'))}", flush=True)
    matmul_runs.append(common.run_child(MODULE, {"task": "matmul", **matmul_payload}))
    reference = max(run["float32"]["flops_per_second"] for run in matmul_runs if "float32" in run)
    report["matmul"] = {"size": MATMUL_SIZE, "runs_before_and_after": matmul_runs,
                        "float32_flops_per_second_best": reference}
    for row in rows:
        if "step" in row:
            images_per_second = row["batch_size"] / (row["step"]["median_ms"] / 1e3)
            flops_per_second = images_per_second * report["configurations"][row["config"]]["training_flops_per_image"]
            same_process = row["matmul_same_process"]["float32"]["flops_per_second"]
            row.update(images_per_second=round(images_per_second, 2), flops_per_second=round(flops_per_second),
                       figure_of_merit=round(flops_per_second / same_process, 4),
                       figure_of_merit_vs_best_matmul=round(flops_per_second / reference, 4))
    report["rows"] = rows
    return report


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: two rows per configuration, small paper batch, few steps")
    parser.add_argument("--slow-rows", action="store_true",
                        help="also the XLA rows left out by default (paper-size XLA: about 10 more minutes)")
    parser.add_argument("--configs", nargs="+", choices=common.CONFIGS, default=list(common.CONFIGS))
    parser.add_argument("--paper-batch-size", type=int, help="paper configuration's batch (default 4, quick 1)")
    parser.add_argument("--cpu-batch-size", type=int, help="CPU configuration's batch (default: its config's)")
    parser.add_argument("--row-timeout", type=float, default=600, help="seconds before a row is abandoned")
    parser.add_argument("--output", type=Path,
                        help="report path (default benchmarks/results/train_throughput[_quick].json)")
    args = parser.parse_args(argv)
    if args.child:
        common.report_to_parent(CHILD_TASKS[args.child["task"]](args.child))
        return
    args.paper_batch_size = args.paper_batch_size or (1 if args.quick else 4)
    output = args.output or common.RESULTS_DIR / f"train_throughput{'_quick' if args.quick else ''}.json"
    common.write_report(run(args), output)


if __name__ == "__main__":
    main()
