"""Where full-integer int8 loses the Keras model's answers: LiteRT's quantization debugger, layer by layer.

The model is exported as `export.py` exports it (the serving SavedModel, its `serving_default`
signature) and quantized as `export.py --quantize int8` does: int8 weights and activations,
calibrated on real Training faces. The debugger (`tf.lite.experimental.QuantizationDebugger`)
then runs the float and the quantized model side by side on PublicTest faces and measures,
for every quantized tensor, the error that quantization adds. The report ranks the tensors by
RMSE / scale: the error in units of the tensor's quantization step (about 0.29 is the
rounding error alone; much more means the range or the rounding does not suit the tensor). It
also gives the top-1 agreement of the int8 model with the float one on the same faces.

    python tools/int8_debug.py --model fer2013 --data ../shared/data/fer2013/fer2013_train_public.csv.gz \\
        --report docs/results/int8_debug_fer2013.json

It takes 3-6 minutes on 2 cores for the CPU-size model.
"""

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# Rounding alone gives an error uniform over one step: RMSE / scale = 1 / sqrt(12).
ROUNDING_ONLY = 1 / 12 ** 0.5


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True, help="a .keras file or a preset name (fer2013)")
    parser.add_argument("--data", required=True, help="FER2013 CSV: Training calibrates, PublicTest debugs")
    parser.add_argument("--report", type=Path, required=True, help="the JSON report to write")
    parser.add_argument("--calibration-samples", type=int, default=500)
    parser.add_argument("--debug-samples", type=int, default=200)
    parser.add_argument("--top", type=int, default=20, help="tensors listed in the report")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_fer import export, files
    from keras_fer.evaluation import load_model_file
    from keras_fer.serving import PIXELS_INPUT, PIXELS_SIGNATURE

    started = time.monotonic()
    model = load_model_file(args.model)
    calibration, _ = export.read_faces(args.data, "Training", args.calibration_samples, seed=0)
    debug_faces, _ = export.read_faces(args.data, "PublicTest", args.debug_samples, seed=1)
    with tempfile.TemporaryDirectory() as temporary:
        # Class names only label the serving outputs, which the debugger does not read.
        class_names = [str(index) for index in range(model.output_shape[-1])]
        saved_model = export.export_saved_model(model, class_names, os.path.join(temporary, "1"))
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
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    top, tensors = layer_report(dump.getvalue(), args.top)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "calibration": {"split": "Training", "faces": len(calibration)},
        "debug": {"split": "PublicTest", "faces": len(debug_faces)},
        "quantized_tensors": tensors,
        "model_statistics": {name: float(np.mean(value)) for name, value in debugger.model_statistics.items()},
        "rmse_over_scale_of_rounding_alone": round(ROUNDING_ONLY, 3),
        "worst_tensors": top,
        "seconds": round(time.monotonic() - started, 1),
    }
    files.write_text(args.report, json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("model", "quantized_tensors", "model_statistics")}, indent=2))
    for row in top[:10]:
        print(f"{row['rmse/scale']:8.3f}  {row['op']:<24} {row['tensor']}")


if __name__ == "__main__":
    main()
