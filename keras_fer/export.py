"""Exports a trained `.keras` model for deployment, and checks each export against it.

* SavedModel in TF Serving's layout, `DIR/<model name>/<version>/`, with the preprocessing
  and the class names inside the graph and two signatures (see `keras_fer.serving`):
  `serving_default` (uint8 faces) and `serving_image_bytes` (encoded images).
* TFLite variants converted from that SavedModel's `serving_default` signature with
  `tf.lite.TFLiteConverter.from_saved_model` (the converter TensorFlow recommends), written
  to `DIR/tflite/<model name>_<variant>.tflite`: float32, float16 (float16 weights),
  dynamic (int8 weights, float activations), int8 (full integer, calibrated on faces
  read through the data pipeline, each activation's range the one with the least quantization
  error, see `keras_fer.quantization`; uint8 pixels in, uint8 probabilities out) and int16x8 (int8
  weights, int16 activations, calibrated the same way: integer arithmetic that holds where
  int8's rounding adds up, see docs/deploy.md). Every variant
  takes uint8 pixels and returns probabilities, class index and class name; the class
  names are also stored in the file's metadata.
* After every export, a parity check on faces the model did not train on: top-1 agreement
  with the Keras model and the largest probability difference, printed and written to
  `DIR/export_parity.json`. The export fails (`ParityError`, exit status 1) when an
  agreement is below `MIN_TOP1_AGREEMENT`.

    python export.py --model runs/quickstart/best.keras --output-dir runs/quickstart/export \
        --format all --quantize none float16 dynamic int8
"""

import argparse
import json
import os
import sys
import tempfile

import cv2
import numpy as np

from keras_fer.classifiers import (
    KerasClassifier,
    ModelError,
    SavedModelClassifier,
    TFLiteClassifier,
    load_classifier,
    run_config,
)
from keras_fer import files
from keras_fer.conversion import (
    CALIBRATED,
    QUANTIZATIONS,
    convert_tflite,
    export_saved_model,
    next_version,
)
from keras_fer.data import USAGES, synthetic_faces
from keras_fer.models import as_float32
from keras_fer.serving import DEFAULT_MODEL_NAME, ENCODED_SIGNATURE, PIXELS_SIGNATURE

FORMATS = ("saved_model", "tflite", "all")
VARIANT_NAMES = {"none": "float32", "float16": "float16", "dynamic": "dynamic", "int8": "int8", "int16x8": "int16x8"}
# Lowest top-1 agreement with the Keras model that an export may have. The SavedModel and the
# float TFLite models compute the same function up to float rounding; dynamic-range and int8
# quantization change the arithmetic, so faces near a decision boundary may flip.
MIN_TOP1_AGREEMENT = {
    "saved_model": 0.995,
    "none": 0.995,
    "float16": 0.995,
    "dynamic": 0.98,
    "int8": 0.97,
    "int16x8": 0.98,
}
PARITY_REPORT = "export_parity.json"
CALIBRATION_SPLIT = "Training"
PARITY_SPLIT = "PrivateTest"
# A face whose top two Keras probabilities differ by at least this much is a confident one: a
# flip there is quantization error, not a near-tie tipping over.
CONFIDENT_MARGIN = 0.2


class ParityError(RuntimeError):
    """An exported model agrees with the Keras model less often than its threshold."""


# ---------------------------------------------------------------------------------------
# Faces for calibration and parity.


def read_faces(data_path, usage, limit, seed, labels="fer2013", ferplus_path=None, class_map=None):
    """Up to `limit` faces of a data split and their labels (in label mode `labels`), shuffled with `seed`.

    `data_path` is a FER2013 CSV or an image folder (read with `labels`, a label mode or the
    model's class names, and the run's `class_map`). Without `data_path`, synthetic faces
    (`keras_fer.data.synthetic_faces`) drawn with a seed per split, so calibration and parity
    faces differ.

    Returns:
        (faces, labels): uint8 (N, 48, 48, 1) and int (N,) class indices.
    """
    if data_path is None:
        return synthetic_faces(limit, seed=seed + (0 if usage == CALIBRATION_SPLIT else 1000))
    from keras_fer.data import FolderFormatError, is_image_folder, read_fer2013, read_image_folder, scan_image_folder

    # The whole split in file order, then a NumPy draw: a tf.data shuffle would also depend on
    # TensorFlow's global seed, so the same `seed` gave other faces after any set_random_seed.
    if is_image_folder(data_path):
        try:
            folder = scan_image_folder(data_path, labels=labels, class_map=class_map)
        except FolderFormatError as error:
            raise ValueError(str(error)) from None
        if usage not in folder.splits:
            raise ValueError(f"{data_path} has no {usage} images (it holds {', '.join(folder.splits)})")
        images, targets = read_image_folder(folder, usage)
    else:
        images, targets = read_fer2013(data_path, usage=usage, labels=labels, ferplus_path=ferplus_path)
    chosen = np.random.default_rng(seed).permutation(len(images))[:limit]
    return images[chosen], targets[chosen]


def run_data_path(model_path):
    """The FER2013 CSV or image folder that the run beside `model_path` trained on, if it is there, else None."""
    source = run_config(model_path).get("data", {}).get("source")
    run_dir = os.path.dirname(os.path.abspath(model_path))
    path = os.path.join(run_dir, "data", "synthetic_fer2013.csv") if source == "synthetic" else source
    return path if path and os.path.exists(path) else None


def encode_png(faces):
    """uint8 (N, H, W, C) -> list of N PNG files (bytes); PNG is lossless, so parity is exact."""
    bgr = (face if face.shape[-1] == 1 else cv2.cvtColor(face, cv2.COLOR_RGB2BGR) for face in faces)
    return [cv2.imencode(".png", face)[1].tobytes() for face in bgr]


# ---------------------------------------------------------------------------------------
# Parity.


def accuracy(probabilities, labels):
    """Fraction of rows of `probabilities` (N, K) whose argmax is the label, rounded to 6 places."""
    return round(float(np.mean(np.argmax(probabilities, -1) == labels)), 6)


def parity(reference, candidate, min_top1_agreement, labels):
    """How closely `candidate` probabilities (N, K) follow `reference` (N, K), and what it costs in accuracy.

    Args:
        reference, candidate: probabilities (N, K) of the Keras model and of an export.
        min_top1_agreement: the lowest top-1 agreement that passes.
        labels: int (N,), the faces' true classes.
    Returns:
        dict: images, top1_agreement (fraction of equal argmax), the same among the faces whose
        reference margin (top probability minus the second) is at least CONFIDENT_MARGIN (and
        their fraction; None without such faces), max_abs_prob_diff, accuracy (the candidate's),
        accuracy_change_points (candidate minus reference, in percentage points),
        min_top1_agreement, passed.
    """
    agrees = np.argmax(reference, -1) == np.argmax(candidate, -1)
    agreement = float(np.mean(agrees))
    top_two = np.sort(reference, -1)[:, -2:]
    confident = top_two[:, 1] - top_two[:, 0] >= CONFIDENT_MARGIN
    candidate_accuracy = accuracy(candidate, labels)
    return {
        "images": int(len(reference)),
        "top1_agreement": round(agreement, 6),
        "confident_margin": CONFIDENT_MARGIN,
        "confident_fraction": round(float(np.mean(confident)), 6),
        "top1_agreement_confident": round(float(np.mean(agrees[confident])), 6) if confident.any() else None,
        "max_abs_prob_diff": float(np.max(np.abs(reference - candidate))),
        "accuracy": candidate_accuracy,
        "accuracy_change_points": round(100 * (candidate_accuracy - accuracy(reference, labels)), 4),
        "min_top1_agreement": min_top1_agreement,
        "passed": agreement >= min_top1_agreement,
    }


def path_size(path):
    """Bytes of a file, or of all files below a directory."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def check_artifact(name, path, probabilities, reference, labels, min_top1_agreement):
    """One report entry for an exported artifact; prints it."""
    entry = {"artifact": name, "path": path, "size_bytes": path_size(path)}
    entry.update(parity(reference, probabilities, min_top1_agreement, labels))
    confident = "none" if entry["top1_agreement_confident"] is None else f"{entry['top1_agreement_confident']:.2%}"
    print(
        f"{name:36s} {entry['size_bytes'] / 2**20:8.2f} MiB  top-1 agreement {entry['top1_agreement']:.2%} "
        f"(min {entry['min_top1_agreement']:.1%}; confident faces {confident})  "
        f"max |dp| {entry['max_abs_prob_diff']:.2e}  accuracy {entry['accuracy']:.2%} "
        f"({entry['accuracy_change_points']:+.2f} points)  "
        f"{'ok' if entry['passed'] else 'FAILED'}",
        flush=True,
    )
    return entry


# ---------------------------------------------------------------------------------------
# The whole export.


def export(
    model_path,
    output_dir,
    export_format="all",
    quantizations=("none",),
    model_name=DEFAULT_MODEL_NAME,
    version=None,
    class_names=None,
    representative_data=None,
    parity_data=None,
    parity_split=PARITY_SPLIT,
    calibration_samples=500,
    parity_samples=500,
    seed=0,
    min_top1_agreement=None,
    labels=None,
    ferplus_path=None,
):
    """Exports `model_path` and checks every export; see the module docstring.

    Args:
        model_path: a `.keras` file, or a shipped preset name (`keras_fer.pretrained.available()`).
        output_dir: where the SavedModel base path, `tflite/` and the parity report go.
        export_format: "saved_model", "tflite" or "all".
        quantizations: TFLite variants, a sequence of QUANTIZATIONS.
        model_name: TF Serving's model name: the SavedModel goes to `output_dir/model_name/version`.
        version: int, or None for one more than the highest existing version.
        class_names: overrides the names found beside the model (see `resolve_class_names`).
        representative_data: FER2013 CSV or image folder whose Training split calibrates int8 and int16x8; None: the data the
            run beside `model_path` trained on (its config.yaml), else synthetic faces.
        parity_data: FER2013 CSV or image folder whose `parity_split` checks parity; defaults to
            `representative_data`, None: synthetic faces.
        parity_split: the split of `parity_data` whose faces check parity; defaults to
            PrivateTest, the one that neither training nor model selection saw.
        calibration_samples, parity_samples: how many faces each uses.
        seed: shuffles the faces taken from the CSVs.
        min_top1_agreement: dict overriding some of MIN_TOP1_AGREEMENT's thresholds.
        labels, ferplus_path: the label mode of the parity faces' accuracy and its FERPlus vote
            file; default the model's (a preset's record, or the run's config.yaml).
    Returns:
        The report (dict), also written to `output_dir/export_parity.json`.
    Raises:
        ModelError: the model cannot be loaded or does not take raw faces.
        ParityError: an export is below its agreement threshold (the report is written first).
    """
    if export_format not in FORMATS:
        raise ValueError(f"`export_format` must be one of {FORMATS}. Received: {export_format!r}")
    unknown = set(quantizations) - set(QUANTIZATIONS)
    if unknown:
        raise ValueError(f"Unknown quantizations {sorted(unknown)}; known: {QUANTIZATIONS}.")
    thresholds = {**MIN_TOP1_AGREEMENT, **(min_top1_agreement or {})}
    keras_model = load_classifier(model_path, class_names)
    if not isinstance(keras_model, KerasClassifier):
        raise ModelError(f"{model_path}: export.py converts a .keras model or a shipped preset, not an export.")
    # A model trained under mixed_bfloat16 is exported, and checked against, as float32.
    keras_model = KerasClassifier(model_path, keras_model.class_names, model=as_float32(keras_model.model))
    representative_data = representative_data or run_data_path(model_path)
    if parity_split not in USAGES:
        raise ValueError(f"`parity_split` must be one of {USAGES}. Received: {parity_split!r}")
    from keras_fer.evaluation import labels_of_run

    run_labels, run_ferplus = labels_of_run(model_path)
    labels, ferplus_path = labels or run_labels, ferplus_path or run_ferplus
    # A model of a folder's own classes reads folders with its class names, mapped as the run mapped them.
    folder_labels = tuple(keras_model.class_names) if labels == "folders" else labels
    class_map = run_config(model_path).get("data", {}).get("class_map")
    try:
        parity_faces, parity_labels = read_faces(parity_data or representative_data, parity_split, parity_samples, seed,
                                                 folder_labels, ferplus_path, class_map)
    except ValueError as error:  # typically a file without that split (the shared one has no PrivateTest)
        raise ValueError(f"{error} (reading the {parity_split} split for the parity check; parity_split, "
                         "--parity-split on the command line, picks another)") from None
    if keras_model.channels == 3:
        parity_faces = np.repeat(parity_faces, 3, axis=-1)
    reference = keras_model.classify(parity_faces)
    os.makedirs(output_dir, exist_ok=True)
    report = {
        "model": model_path,
        "class_names": list(keras_model.class_names),
        "parity_data": {
            "source": parity_data or representative_data or "synthetic_faces",
            "split": parity_split,
            "labels": labels,
            "images": int(len(parity_faces)),
            "keras_accuracy": accuracy(reference, parity_labels),
        },
        "artifacts": [],
    }

    with tempfile.TemporaryDirectory() as scratch:
        if export_format in ("saved_model", "all"):
            model_base_dir = os.path.join(output_dir, model_name)
            saved_model_dir = os.path.join(model_base_dir, str(version or next_version(model_base_dir)))
        else:  # TFLite only: the SavedModel is an intermediate step.
            saved_model_dir = os.path.join(scratch, "saved_model")
        export_saved_model(keras_model.model, keras_model.class_names, saved_model_dir)
        if export_format in ("saved_model", "all"):
            served = SavedModelClassifier(saved_model_dir)
            report["artifacts"].append(check_artifact(
                f"saved_model:{PIXELS_SIGNATURE}", saved_model_dir, served.classify(parity_faces), reference,
                parity_labels, thresholds["saved_model"],
            ))
            report["artifacts"].append(check_artifact(
                f"saved_model:{ENCODED_SIGNATURE} (PNG)", saved_model_dir,
                served.classify_encoded(encode_png(parity_faces)), reference, parity_labels,
                thresholds["saved_model"],
            ))
        if export_format in ("tflite", "all"):
            calibration_faces = None
            if set(CALIBRATED) & set(quantizations):
                calibration_faces, _ = read_faces(representative_data, CALIBRATION_SPLIT, calibration_samples, seed,
                                                  folder_labels, ferplus_path, class_map)
                if keras_model.channels == 3:
                    calibration_faces = np.repeat(calibration_faces, 3, axis=-1)
            tflite_dir = os.path.join(output_dir, "tflite")
            os.makedirs(tflite_dir, exist_ok=True)
            for quantization in quantizations:
                variant = VARIANT_NAMES[quantization]
                tflite_path = os.path.join(tflite_dir, f"{model_name}_{variant}.tflite")
                files.write_bytes(
                    tflite_path, convert_tflite(saved_model_dir, quantization, keras_model.class_names, calibration_faces)
                )
                report["artifacts"].append(check_artifact(
                    f"tflite:{variant}", tflite_path, TFLiteClassifier(tflite_path).classify(parity_faces), reference,
                    parity_labels, thresholds[quantization],
                ))

    report_path = os.path.join(output_dir, PARITY_REPORT)
    files.write_text(report_path, json.dumps(report, indent=2))
    print(f"parity report: {report_path}")
    failed = [entry["artifact"] for entry in report["artifacts"] if not entry["passed"]]
    if failed:
        raise ParityError(
            f"{', '.join(failed)}: top-1 agreement with the Keras model below the threshold "
            f"(see {report_path}); the export is not fit to deploy."
        )
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="export.py",
        description="Export a trained .keras model as a TF Serving SavedModel and TFLite models, with parity checks.",
    )
    parser.add_argument("--model", required=True,
                        help="the .keras file, e.g. runs/quickstart/best.keras, or a shipped preset name (fer2013)")
    parser.add_argument("--output-dir", required=True, help="where the exports and export_parity.json go")
    parser.add_argument("--format", default="all", choices=FORMATS, dest="export_format")
    parser.add_argument(
        "--quantize", nargs="+", default=["none"], choices=QUANTIZATIONS, dest="quantizations",
        help="TFLite variants: none (float32), float16, dynamic, int8, int16x8 (int16 activations); several may be given",
    )
    parser.add_argument(
        "--representative-data", metavar="CSV|DIR",
        help="FER2013 CSV or image folder: its Training split calibrates int8 and int16x8, its --parity-split split checks parity "
        "(default: the run's training data, from config.yaml beside the model, else synthetic faces)",
    )
    parser.add_argument("--parity-data", metavar="CSV|DIR",
                        help="FER2013 CSV or image folder for the parity check, if not the above")
    parser.add_argument(
        "--parity-split", default=PARITY_SPLIT, choices=USAGES,
        help="split whose faces check parity (default PrivateTest; PublicTest for a file without it, "
        "such as fer2013_train_public.csv.gz)",
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="TF Serving model name")
    parser.add_argument("--version", type=int, help="SavedModel version (default: the next free one)")
    parser.add_argument("--class-names", help="comma-separated class names (default: the run's, or FER2013's)")
    parser.add_argument("--calibration-samples", type=int, default=500)
    parser.add_argument("--parity-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", choices=("fer2013", "ferplus", "ferplus8"),
                        help="label mode of the parity faces' accuracy (default: the model's)")
    parser.add_argument("--ferplus", help="FERPlus vote file fer2013new.csv, for the ferplus label modes")
    return parser.parse_args(argv)


def main(argv=None):
    """Runs export.py; returns the exit status."""
    args = parse_args(argv)
    try:
        export(
            args.model, args.output_dir, args.export_format, args.quantizations, args.model_name, args.version,
            args.class_names.split(",") if args.class_names else None, args.representative_data,
            args.parity_data, args.parity_split, args.calibration_samples, args.parity_samples, args.seed,
            labels=args.labels, ferplus_path=args.ferplus,
        )
    # ValueError and OSError: a representative-data CSV that is missing, breaks the format
    # (FER2013FormatError) or lacks a split; their messages name the file.
    except (ModelError, ParityError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
