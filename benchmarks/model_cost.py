"""What a trained model costs to use, model against model: its file, its time a face, the photo path's time.

Each model given (a preset name such as `fer2013` or `ferplus`, a `.keras` file, a SavedModel
directory or a `.tflite` file) is measured in a fresh process, one after the other:

* size: its file on disk (a preset: its file under keras_fer/presets, every network of it);
* latency at batch 1 and throughput at batch 64 of `load_classifier(model).classify`, the
  classifier predict.py and the Python API use, measured as `benchmarks.inference` measures the
  exported forms (the same calls, warm-ups and threads), on real PublicTest faces;
* the photo path: `FaceExpressionRecognizer(model).recognize` on real PublicTest faces placed in
  640x480 frames (`benchmarks.face_frames`, as `benchmarks.photo_path` places them), with the
  default detectors, alignment and framing views; the median and 90th percentile of `--frames`
  frames after 3 warm-up frames, and the faces found.

A decision that weighs what a model costs (docs/training.md: the rule for the `fer2013` preset)
compares models measured by one command on one machine, with nothing else running.

    python -m benchmarks.model_cost fer2013 runs/fer2013_wide/best.keras --output benchmarks/results/model_cost_wide.json
    python -m benchmarks.model_cost fer2013 --quick      # a few calls, a few frames
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import common  # noqa: E402

MODULE = "benchmarks.model_cost"
FRAMES, QUICK_FRAMES = 50, 4
PHOTO_WARMUP_FRAMES = 3
# (batch-1 warm-up, batch-1 timed, batch-64 warm-up, batch-64 timed), as benchmarks.inference at the CPU size.
CALLS, QUICK_CALLS = (5, 50, 1, 5), (2, 5, 1, 1)


def model_size(model):
    """Bytes of the model's files: a preset's file, a `.keras` or `.tflite` file, or a SavedModel directory."""
    from keras_fer import pretrained
    from keras_fer.export import path_size

    if pretrained.names_a_preset(model):
        return path_size(pretrained.preset_path(pretrained.preset_of(model)))
    return path_size(model)


def measure_model(payload):
    """Size, classifier latency and throughput, and photo-path time of one model (run in a child process)."""
    from benchmarks.face_frames import placed_faces
    from benchmarks.inference import THROUGHPUT_BATCH, measure_variant
    from keras_fer.export import read_faces
    from keras_fer.recognizer import FaceExpressionRecognizer

    model, frame_count = payload["model"], payload["frames"]
    faces, labels = read_faces(str(common.DATA_FILE), "PublicTest", max(THROUGHPUT_BATCH, frame_count), seed=0)
    result = {"size_bytes": model_size(model)}
    result.update(measure_variant(model, faces, tuple(payload["calls"])))

    recognizer = FaceExpressionRecognizer(model)
    frames = list(placed_faces(faces[:PHOTO_WARMUP_FRAMES + frame_count], labels[:PHOTO_WARMUP_FRAMES + frame_count]))
    for frame in frames[:PHOTO_WARMUP_FRAMES]:
        recognizer.recognize(frame.image)
    seconds, found = [], 0
    for frame in frames[PHOTO_WARMUP_FRAMES:]:
        start = time.perf_counter()
        found += bool(recognizer.recognize(frame.image))
        seconds.append(time.perf_counter() - start)
    result["photo_path"] = {**common.summarize_seconds(seconds), "frames_with_a_face_found": found}
    return result


def markdown(models):
    """One row a model: size, batch-1 latency, batch-64 throughput, photo-path time."""
    lines = ["| model | size, MiB | ms a face, batch 1 (median) | faces/s, batch 64 | photo path, ms a frame (median) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for entry in models:
        if "error" in entry:
            lines.append(f"| {entry['model']} | {entry['error']} | | | |")
            continue
        lines.append(f"| {entry['model']} | {entry['size_bytes'] / 2**20:.1f} | {entry['latency_batch_1']['median_ms']:.1f} "
                     f"| {entry['throughput']['images_per_second']:.0f} | {entry['photo_path']['median_ms']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = common.argument_parser(__doc__)
    parser.add_argument("models", nargs="*", help="preset names or model paths, measured in this order")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"photo-path frames timed a model (default {FRAMES}; --quick: {QUICK_FRAMES})")
    parser.add_argument("--quick", action="store_true", help="smoke run: few calls, few frames")
    parser.add_argument("--output", type=Path, help="report path (default benchmarks/results/model_cost.json)")
    args = parser.parse_args(argv)
    if args.child:
        common.report_to_parent(measure_model(args.child))
        return
    if not args.models:
        parser.error("give at least one model: a preset name (fer2013, ferplus) or a model file")
    frames = args.frames if args.frames is not None else QUICK_FRAMES if args.quick else FRAMES
    if frames < 1:
        parser.error(f"--frames must be at least 1. Received: --frames {frames}")
    from keras_fer import pretrained

    missing = [model for model in args.models if not pretrained.names_a_preset(model) and not os.path.exists(model)]
    if missing:
        parser.error(f"no such preset or model file: {', '.join(missing)} (presets: {', '.join(pretrained.available())})")

    report = common.report_header(["keras_fer", "benchmarks"])
    report["definitions"] = {
        "size_bytes": "the model's file (a preset's whole file, every network in it)",
        "latency_batch_1": "wall time of one classify() call on one raw 48x48 face, preprocessing included, ms",
        "throughput": "64 / median wall time of a batch-64 classify() call",
        "photo_path": "wall time of FaceExpressionRecognizer(model).recognize on one 640x480 frame with one real "
                      "face: detection, crops, framing views, classification, ms",
    }
    report["calls"] = dict(zip(("batch_1_warmup", "batch_1_runs", "batch_64_warmup", "batch_64_runs"),
                               QUICK_CALLS if args.quick else CALLS))
    report["photo_path_frames"] = frames
    report["models"] = []
    for model in args.models:
        # The child runs in the repository root: a path is made absolute here, where it was given.
        where = model if pretrained.names_a_preset(model) else os.path.abspath(model)
        entry = common.run_child(MODULE, {"model": where, "frames": frames,
                                          "calls": QUICK_CALLS if args.quick else CALLS}, timeout=1800)
        report["models"].append({"model": model, **entry})
        print(f"{model}: {entry}", flush=True)
    report["table"] = markdown(report["models"])
    print(report["table"])
    common.write_report(report, args.output or common.RESULTS_DIR / f"model_cost{'_quick' if args.quick else ''}.json")


if __name__ == "__main__":
    main()
