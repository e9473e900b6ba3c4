"""Where full-integer int8 loses the Keras model's answers: LiteRT's quantization debugger, layer by layer.

The model is exported as `export.py` exports it (the serving SavedModel, its `serving_default`
signature) and quantized as `export.py --quantize int8` does: int8 weights and activations,
calibrated on real Training faces, each activation's range the one with the least quantization
error (`keras_fer.quantization`; `--ranges min-max` keeps the converter's own ranges, the
smallest and largest value calibration saw). The debugger (`tf.lite.experimental.QuantizationDebugger`)
then runs the float and the quantized model side by side on PublicTest faces and measures,
for every quantized tensor, the error that quantization adds. The report ranks the tensors by
RMSE / scale: the error in units of the tensor's quantization step (about 0.29 is the
rounding error alone; much more means the range or the rounding does not suit the tensor). It
also gives the top-1 agreement of the int8 model with the float one on the same faces.

Then it keeps one part of the network in float at a time ("float islands", the debugger's
`denylisted_nodes`, chosen by the model's structured layer names: the masks, each stage's
masks, the backbone blocks, each stage's blocks, the gates, the stem, the head) and measures the
top-1 agreement of each such int8 model with the Keras model on PublicTest faces (by default
all 3,589). A part whose island brings the agreement up is where int8 loses answers.

    python tools/int8_debug.py --model fer2013 --data ../shared/data/fer2013/fer2013_train_public.csv.gz \\
        --report docs/results/int8_debug_fer2013.json
    python tools/int8_debug.py --model fer2013 --data ../shared/data/fer2013/fer2013_train_public.csv.gz \\
        --ranges min-max --report docs/results/int8_debug_fer2013_min_max.json

It takes 3-6 minutes on 2 cores for the CPU-size model.
"""

import argparse
import csv
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# Rounding alone gives an error uniform over one step: RMSE / scale = 1 / sqrt(12).
ROUNDING_ONLY = 1 / 12 ** 0.5
RANGES = ("least-error", "min-max")
# Float islands: a part of the network, by the regular expression its tensor names match.
FLOAT_ISLANDS = {
    "none (all int8)": None,
    "ECA-U-Net masks": r"stage\d_mask_\d+/",
    **{f"stage{i} masks": rf"stage{i}_mask_\d+/" for i in range(1, 5)},
    "ECA inside the masks": r"_eca_\d+/",
    "mask gates F*(1+W)": r"stage\d_mask_gate|stage\d_fused",
    "backbone blocks": r"stage\d_block",
    **{f"stage{i} blocks": rf"stage{i}_block" for i in range(1, 5)},
    "stem": r"stem_",
    "head (pool, dense, softmax)": r"avg_pool|predictions",
}


def layer_report(dump_text, top):
    """The `top` tensors by RMSE / scale from the debugger's layer statistics CSV text."""
    rows = list(csv.DictReader(io.StringIO(dump_text)))
    for row in rows:
        scale = float(row["scale"]) if row.get("scale") else 0.0
        row["rmse/scale"] = (float(row["mean_squared_error"]) ** 0.5 / scale) if scale else float("nan")
    ranked = sorted((row for row in rows if np.isfinite(row["rmse/scale"])), key=lambda r: -r["rmse/scale"])
    return [
        {"tensor": row["tensor_name"], "op": row["op_name"], "rmse/scale": round(row["rmse/scale"], 3),
         "scale": float(row["scale"]), "max_abs_error": float(row["max_abs_error"]),
         "stddev_of_float_tensor": float(row["stddev"]) if row.get("stddev") else None}
        for row in ranked[:top]
    ], len(rows)


def float_island_agreements(debugger, tensor_names, model, faces):
    """Top-1 agreement with `model` of the int8 model with each FLOAT_ISLANDS part kept in float."""
    from keras_fer.classifiers import TFLiteClassifier

    reference = model.predict(faces, batch_size=256, verbose=0).argmax(axis=1)
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for part, pattern in FLOAT_ISLANDS.items():
            nodes = [name for name in tensor_names if pattern and re.search(pattern, name)]
            if pattern and not nodes:
                raise SystemExit(f"float island {part!r}: no tensor matches {pattern!r}; the layer names changed")
            debugger._debug_options.denylisted_nodes = nodes
            path = os.path.join(temporary, "island.tflite")
            with open(path, "wb") as file:
                file.write(debugger.get_nondebug_quantized_model())
            agreement = float(np.mean(TFLiteClassifier(path).classify(faces).argmax(axis=1) == reference))
            rows.append({"float_part": part, "float_tensors": len(nodes), "top1_agreement": round(agreement, 5),
                         "differing_faces": int(round((1 - agreement) * len(faces)))})
            print(f"{agreement:8.2%}  {part} ({len(nodes)} tensors in float)", flush=True)
    debugger._debug_options.denylisted_nodes = None
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True, help="a .keras file or a preset name (fer2013)")
    parser.add_argument("--data", required=True, help="FER2013 CSV: Training calibrates, PublicTest debugs")
    parser.add_argument("--report", type=Path, required=True, help="the JSON report to write")
    parser.add_argument("--calibration-samples", type=int, default=500)
    parser.add_argument("--debug-samples", type=int, default=200)
    parser.add_argument("--top", type=int, default=20, help="tensors listed in the report")
    parser.add_argument("--ranges", choices=RANGES, default="least-error",
                        help="activation ranges: least quantization error, as export.py sets them (default), "
                             "or the converter's min-max")
    parser.add_argument("--island-samples", type=int, default=3589,
                        help="PublicTest faces for the float-island agreements (0: skip them)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_fer import conversion, export, files, quantization
    from keras_fer.evaluation import load_model_file
    from keras_fer.serving import PIXELS_INPUT, PIXELS_SIGNATURE

    started = time.monotonic()
    model = load_model_file(args.model)
    calibration, _ = export.read_faces(args.data, "Training", args.calibration_samples, seed=0)
    debug_faces, _ = export.read_faces(args.data, "PublicTest", args.debug_samples, seed=1)
    with tempfile.TemporaryDirectory() as temporary:
        # Class names only label the serving outputs, which the debugger does not read.
        class_names = [str(index) for index in range(model.output_shape[-1])]
        saved_model = conversion.export_saved_model(model, class_names, os.path.join(temporary, "1"))
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[PIXELS_SIGNATURE])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({PIXELS_INPUT: face[None]} for face in calibration)
        # The debugger compares float and int8 tensors with float model inputs and outputs.
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: ([face[None]] for face in debug_faces),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                model_debug_metrics={"top1_agreement": lambda f, q: float(np.mean(
                    [np.argmax(a) == np.argmax(b) for a, b in zip(f, q)]))},
            ),
        )
        if args.ranges == "least-error":
            debugger.calibrated_model = quantization.tighten_ranges(debugger.calibrated_model, calibration)
            debugger.options = debugger.options  # the setter quantizes the debug model again, from these ranges
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
        islands = []
        if args.island_samples:
            island_faces, _ = export.read_faces(args.data, "PublicTest", args.island_samples, seed=0)
            names = [detail["name"] for detail in tf.lite.Interpreter(
                model_content=debugger.calibrated_model).get_tensor_details()]
            islands = float_island_agreements(debugger, names, model, island_faces)
    top, tensors = layer_report(dump.getvalue(), args.top)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "calibration": {"split": "Training", "faces": len(calibration), "ranges": args.ranges},
        "debug": {"split": "PublicTest", "faces": len(debug_faces)},
        "quantized_tensors": tensors,
        "model_statistics": {name: float(np.mean(value)) for name, value in debugger.model_statistics.items()},
        "rmse_over_scale_of_rounding_alone": round(ROUNDING_ONLY, 3),
        "worst_tensors": top,
        "float_islands": {"split": "PublicTest", "faces": args.island_samples, "agreements": islands},
        "seconds": round(time.monotonic() - started, 1),
    }
    files.write_text(args.report, json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("model", "quantized_tensors", "model_statistics")}, indent=2))
    for row in top[:10]:
        print(f"{row['rmse/scale']:8.3f}  {row['op']:<24} {row['tensor']}")


if __name__ == "__main__":
    main()
