"""Inference speed of every deployable form of the model: the Keras model, the serving SavedModel
and the five TFLite variants (float32, float16, dynamic, int8, int16x8), at the CPU size and the paper size.

For each configuration (`configs/fer2013_cpu.yaml`, `configs/paper.yaml`) the network is built
as `train.py` builds it (weights as initialized: speed does not depend on their values),
saved as `.keras`, exported with the export engineer's functions
(`keras_fer.conversion.export_saved_model`, `convert_tflite`; int8 calibrated on real Training
faces) and loaded with the classifiers `predict.py` uses (`keras_fer.classifiers.load_classifier`:
`predict_on_batch`, the `serving_default` signature, the LiteRT interpreter with its default
threads). Each takes raw uint8 48x48 faces, preprocessing included. Reported per variant:

* latency at batch 1: median and 90th percentile of 50 calls after 5 warm-up calls (paper
  size: 10 after 2);
* throughput at batch 64: 64 / median time of 5 batch-64 calls after one warm-up call (paper
  size: one call);
* the cores it kept busy (process CPU time / wall time over the timed calls), the file size and
  the export time.

Each configuration runs in its own process. The paper size is heavy (44 GFLOPs a face, one
batch-64 call takes 15-80 s; the float32 TFLite file is about 550 MB): no variant starts after
`--seconds-per-config`, and one that fails or does not start is recorded with the reason.

    python -m benchmarks.inference            # about 9 minutes on 2 cores; paper size partly
    python -m benchmarks.inference --configs paper --seconds-per-config 3600 \
        --output benchmarks/results/inference_paper.json      # every paper-size variant, ~15 min
    python -m benchmarks.inference --quick    # CPU size only, few calls
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402

MODULE = "benchmarks.inference"
THROUGHPUT_BATCH = 64
# Calls per measurement: (batch-1 warm-up, batch-1 timed, batch-64 warm-up, batch-64 timed).
# At the paper size one batch-64 call takes 15-80 s, so it is timed once without a warm-up
# call of its own (the batch-1 calls have warmed the model up).
CALLS = {"cpu": (5, 50, 1, 5), "paper": (2, 10, 0, 1)}
QUICK_CALLS = (2, 5, 1, 1)
CALL_NAMES = ("batch_1_warmup", "batch_1_runs", "batch_64_warmup", "batch_64_runs")
# Measured in this order; at the paper size the last ones may not fit the time budget.
VARIANTS = ("keras", "saved_model", "tflite_int8", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int16x8")
CALIBRATION_FACES = {"cpu": 100, "paper": 20}


def build_and_save(config_name, path):
    """The configuration's network as `train.py` builds it, saved to `path`; returns the config."""
    from keras_fer import config as config_lib
    from keras_fer import training

    config = config_lib.load_config(common.REPO_ROOT / common.CONFIGS[config_name])
    keras.utils.set_random_seed(config.training.seed)
    model = training.make_model(config, 7)
    model.save(path)
    return config


def export_variant(variant, keras_path, saved_model_dir, calibration_faces):
    """Writes one exported form next to `keras_path` with `keras_fer.conversion`; returns its path."""
    from keras_fer import conversion
    from keras_fer.data import class_names

    names = class_names("fer2013")
    if variant == "saved_model":
        model = keras.saving.load_model(keras_path, compile=False)
        return conversion.export_saved_model(model, names, saved_model_dir)
    quantization = variant.removeprefix("tflite_")
    path = Path(keras_path).with_name(f"model_{quantization}.tflite")
    path.write_bytes(conversion.convert_tflite(saved_model_dir, {"float32": "none"}.get(quantization, quantization),
                                               names, calibration_faces))
    return str(path)


def time_calls(function, faces, warmup, runs):
    """Seconds of each of `runs` calls of `function(faces)` after `warmup` calls, and cores busy."""
    for _ in range(warmup):
        function(faces)
    seconds, cpu_start, wall_start = [], time.process_time(), time.perf_counter()
    for _ in range(runs):
        start = time.perf_counter()
        function(faces)
        seconds.append(time.perf_counter() - start)
    cores = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    return seconds, round(cores, 2)


def measure_variant(path, faces, calls):
    """Latency at batch 1 and throughput at batch 64 of the model at `path`.

    A TFLite model's batch-1 latency is measured on one interpreter thread, as an app that
    classifies one face at a time runs it; its batch-64 throughput on the default threads
    (`TFLiteClassifier`: every core). TensorFlow picks its own threads for the other forms.
    """
    from keras_fer.classifiers import TFLiteClassifier, load_classifier

    warmup, runs, batch_warmup, batch_runs = calls
    classifier = load_classifier(str(path))
    single_face = TFLiteClassifier(str(path), num_threads=1) if isinstance(classifier, TFLiteClassifier) else classifier
    seconds, cores = time_calls(single_face.classify, faces[:1], warmup, runs)
    latency = {**common.summarize_seconds(seconds), "cores_busy": cores,
               "threads": getattr(single_face, "num_threads", "tensorflow")}
    seconds, cores = time_calls(classifier.classify, faces[:THROUGHPUT_BATCH], batch_warmup, batch_runs)
    batch = common.summarize_seconds(seconds)
    throughput = {"images_per_second": round(THROUGHPUT_BATCH / (batch["median_ms"] / 1e3), 2),
                  "batch": THROUGHPUT_BATCH, **batch, "cores_busy": cores,
                  "threads": getattr(classifier, "num_threads", "tensorflow")}
    return {"latency_batch_1": latency, "throughput": throughput}


def measure_configuration(payload):
    """Exports and measures every variant of one configuration, in order, within `seconds_left`."""
    from keras_fer.export import CALIBRATION_SPLIT, path_size, read_faces

    name, deadline = payload["config"], time.monotonic() + payload["seconds_left"]
    calls = tuple(payload["calls"])
    faces, _ = read_faces(str(common.DATA_FILE), "PublicTest", THROUGHPUT_BATCH, seed=0)
    calibration, _ = read_faces(str(common.DATA_FILE), CALIBRATION_SPLIT, payload["calibration_faces"], seed=0)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        keras_path = os.path.join(workdir, "model.keras")
        saved_model_dir = os.path.join(workdir, "saved_model")
        config = build_and_save(name, keras_path)
        paths = {"keras": keras_path}
        for variant in payload["variants"]:
            if time.monotonic() > deadline:
                results[variant] = {"skipped": "the time budget of this configuration ran out before it"}
                continue
            try:
                start = time.perf_counter()
                if variant != "keras":
                    paths[variant] = export_variant(variant, keras_path, saved_model_dir, calibration)
                entry = {"export_seconds": round(time.perf_counter() - start, 1),
                         "size_bytes": path_size(paths[variant])}
                entry.update(measure_variant(paths[variant], faces, calls))
            except Exception as error:  # a failed variant is reported; the others still run
                entry = {"error": f"{type(error).__name__}: {error}"[:500]}
            results[variant] = entry
            print(f"{name} {variant}: {entry}", flush=True)
            gc.collect()
    return {
        "config_file": common.CONFIGS[name],
        "backbone_input": config.model.input_size,
        "stem": config.model.stem,
        "width": config.model.width,
        "calls": dict(zip(CALL_NAMES, calls)),
        "calibration_faces": payload["calibration_faces"],
        "variants": results,
    }


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: CPU size only, few calls")
    parser.add_argument("--configs", nargs="+", choices=common.CONFIGS, help="default: cpu paper (quick: cpu)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seconds-per-config", type=float, default=300,
                        help="no new variant starts after this many seconds of a configuration (default 300)")
    parser.add_argument("--output", type=Path,
                        help="report path (default benchmarks/results/inference[_quick].json)")
    args = parser.parse_args(argv)
    if args.child:
        common.report_to_parent(measure_configuration(args.child))
        return
    import ai_edge_litert

    report = common.report_header(["keras_fer", "configs", "benchmarks"], tf, keras, np, ai_edge_litert)
    report["definitions"] = {
        "latency_batch_1": "wall time of one classify() call on one raw face (preprocessing included), ms",
        "throughput": f"{THROUGHPUT_BATCH} / median wall time of a batch-{THROUGHPUT_BATCH} classify() call",
        "cores_busy": "process CPU time / wall time over the timed calls (2 = both cores)",
        "classify": "keras_fer.classifiers.load_classifier(path).classify: Keras predict_on_batch, SavedModel "
                    "serving_default, LiteRT interpreter (default threads)",
    }
    report["configurations"] = {}
    for name in args.configs or (["cpu"] if args.quick else list(common.CONFIGS)):
        payload = {"config": name, "variants": args.variants, "seconds_left": args.seconds_per_config,
                   "calls": QUICK_CALLS if args.quick else CALLS[name],
                   "calibration_faces": 10 if args.quick else CALIBRATION_FACES[name]}
        report["configurations"][name] = common.run_child(MODULE, payload, timeout=args.seconds_per_config + 900)
    common.write_report(report, args.output or common.RESULTS_DIR / f"inference{'_quick' if args.quick else ''}.json")


if __name__ == "__main__":
    main()
