"""Evaluating a trained model: classification metrics, paired comparisons, test-time augmentation, confusion matrix.

`evaluate.py` runs `main`; training calls `evaluate_split` for its final figures. Faces are
read with the NumPy readers on every backend (test splits are small): `read_fer2013` for a CSV,
and `read_image_folder` for a folder of images, one folder per class (docs/data.md, "Image
folders"; it decodes with TensorFlow). Predictions go through `model.predict`.

Test-time augmentation (TTA), as the FER2013 literature reports it:
- `flip`: the face and its mirror image, probabilities averaged (2 views);
- `ten-crop`: the four corner crops and the center crop of side `crop_size` (44 of 48, the
  common choice), each with its mirror image, resized back to the model's input and
  averaged (10 views). The crops are a 1.09x zoom, inside the training augmentation's range.
"""

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from keras_fer import files

TTA_MODES = ("flip", "ten-crop")
DEFAULT_CROP_SIZE = 44


def classification_metrics(labels, predictions, class_names):
    """Accuracy, per-class precision / recall / F1, macro F1 and the confusion matrix.

    Args:
        labels: int (N,), true classes.
        predictions: int (N,), predicted classes.
        class_names: names indexed by class.
    Returns:
        A JSON-ready dict. The confusion matrix is indexed [true][predicted]; `normalized`
        divides each row by its true-class count (rows of absent classes stay 0). A class
        never predicted has precision 0, one never present has recall 0 (and F1 0).
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    num_classes = len(class_names)
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, predictions), 1)
    true_positives = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {
        "num_images": int(len(labels)),
        "accuracy": float(true_positives.sum() / max(len(labels), 1)),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": {
            "class_names": list(class_names),
            "counts": counts.tolist(),
            "normalized": _safe_divide(counts, support[:, None]).tolist(),
        },
    }


def paired_comparison(correct, baseline_correct):
    """How one model's per-face correctness compares with the baseline's on the same faces.

    Args:
        correct, baseline_correct: boolean arrays, one entry per face.
    Returns:
        dict: `gain_points` (accuracy difference, in points), `standard_error_points` (of the mean
        paired difference), `right_where_baseline_wrong` and `wrong_where_baseline_right`.

    >>> paired_comparison(np.array([1, 1, 0, 1], bool), np.array([1, 0, 0, 0], bool))["gain_points"]
    50.0
    """
    correct, baseline_correct = np.asarray(correct, bool), np.asarray(baseline_correct, bool)
    if correct.shape != baseline_correct.shape or correct.ndim != 1 or len(correct) < 2:
        raise ValueError(f"need two equal 1-D arrays of at least 2 faces; received shapes {correct.shape} "
                         f"and {baseline_correct.shape}")
    difference = correct.astype(np.float64) - baseline_correct
    return {
        "gain_points": 100 * float(difference.mean()),
        "standard_error_points": 100 * float(difference.std(ddof=1) / np.sqrt(len(difference))),
        "right_where_baseline_wrong": int(np.sum(correct & ~baseline_correct)),
        "wrong_where_baseline_right": int(np.sum(~correct & baseline_correct)),
    }


def _safe_divide(numerator, denominator):
    numerator = np.asarray(numerator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=np.asarray(denominator) > 0)


def tta_views(images, mode, crop_size=DEFAULT_CROP_SIZE):
    """The augmented copies of a batch of faces that TTA averages over.

    Args:
        images: (N, H, W, C) faces, uint8 or float 0-255.
        mode: None (the faces alone), "flip" or "ten-crop".
        crop_size: side of the ten crops.
    Yields:
        float32 (N, H, W, C) arrays, one per view.
    """
    images = np.asarray(images, np.float32)
    if mode is None:
        yield images
        return
    if mode not in TTA_MODES:
        raise ValueError(f"`mode` must be None or one of {TTA_MODES}. Received: mode={mode!r}")
    if mode == "flip":
        crops = [images]
    else:
        crops = [_resize(crop, images.shape[1:3]) for crop in _five_crops(images, crop_size)]
    for crop in crops:
        yield crop
        yield crop[:, :, ::-1]


def _five_crops(images, size):
    height, width = images.shape[1:3]
    if not 0 < size <= min(height, width):
        raise ValueError(f"`crop_size` must be in [1, {min(height, width)}]. Received: crop_size={size}")
    top, left = (height - size) // 2, (width - size) // 2
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size), (top, left)]
    return [images[:, y : y + size, x : x + size] for y, x in corners]


def _resize(images, shape):
    from keras import ops

    return np.asarray(ops.convert_to_numpy(ops.image.resize(images, shape, interpolation="bilinear")), np.float32)


def predict_probabilities(model, images, tta=None, batch_size=256, crop_size=DEFAULT_CROP_SIZE):
    """Class probabilities (N, classes), averaged over the TTA views."""
    total = None
    views = 0
    # Padded to whole batches: one input shape, so `predict` traces (compiles) its step once
    # instead of again for a smaller last batch.
    padding = -len(images) % batch_size
    for view in tta_views(images, tta, crop_size):
        padded = np.concatenate([view, np.zeros((padding, *view.shape[1:]), view.dtype)])
        probabilities = model.predict(padded, batch_size=batch_size, verbose=0)[: len(images)]
        total = probabilities if total is None else total + probabilities
        views += 1
    return total / views


def evaluate_split(model, path, split, labels="fer2013", ferplus_path=None, class_names=None, tta=None,
                   batch_size=256):
    """Reads one split of a FER2013 file and measures `model` on it.

    Returns:
        `classification_metrics(...)` plus `split` and `tta`.
    """
    from keras_fer import data as fer_data

    images, targets = fer_data.read_fer2013(path, usage=split, labels=labels, ferplus_path=ferplus_path)
    probabilities = predict_probabilities(model, images, tta=tta, batch_size=batch_size)
    report = {"split": split, "tta": tta}
    report.update(classification_metrics(targets, probabilities.argmax(axis=-1),
                                         class_names or fer_data.class_names(labels)))
    return report


def evaluate_folder(model, folder, split=None, detect_faces=False, tta=None, batch_size=256):
    """Reads one split (or all) of a scanned image folder and measures `model` on it.

    Args:
        model: a Keras model whose outputs are indexed as `folder.class_names`.
        folder: a `keras_fer.data.ImageFolder` (`scan_image_folder`), scanned with the model's
            label mode or class names so that the labels index the model's outputs.
        split: "Training", "PublicTest", "PrivateTest", or None for every image of the folder.
        detect_faces: find and crop the face in each image (images that are not crops).
        tta, batch_size: as in `predict_probabilities`.
    Returns:
        `classification_metrics(...)` plus `split` ("all" for None), `tta`, `unreadable` (files left
        out by the header check) and `skipped` (files dropped while reading: damaged, or no face),
        each a list of {"path", "reason"}.
    Raises:
        ValueError: no image of the split could be read.

    Example:
    >>> from keras_fer import data, pretrained
    >>> folder = data.scan_image_folder("faces/", labels="fer2013")  # doctest: +SKIP
    >>> evaluate_folder(pretrained.load("fer2013"), folder)["accuracy"]  # doctest: +SKIP
    0.69
    """
    from keras_fer import data as fer_data

    images, targets = fer_data.read_image_folder(folder, split, detect_faces=detect_faces)
    if not len(images):
        raise ValueError(f"{folder.root}: none of the {folder.count(split)} images of split {split or 'all'} "
                         f"could be read ({len(folder.skipped)} skipped)")
    probabilities = predict_probabilities(model, images, tta=tta, batch_size=batch_size)
    report = {"split": split or "all", "tta": tta}
    report.update(classification_metrics(targets, probabilities.argmax(axis=-1), folder.class_names))
    chosen = {path for name in ([split] if split else folder.splits) for path in folder.splits[name][0]}
    report["unreadable"] = [{"path": path, "reason": reason} for path, reason in folder.unreadable]
    report["skipped"] = [{"path": path, "reason": reason} for path, reason in folder.skipped.items() if path in chosen]
    return report


def plot_confusion_matrix(normalized, class_names, path, title=None):
    """Writes the row-normalized confusion matrix as a PNG, a value in every cell.

    Uses matplotlib's Agg canvas directly (no pyplot), so it works without a display and
    leaves the caller's matplotlib state alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(normalized, np.float64)
    size = 1.0 + 0.9 * len(class_names)
    figure = Figure(figsize=(size + 1.2, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("True")
    if title:
        axes.set_title(title)
    for (row, column), value in np.ndenumerate(matrix):
        axes.text(column, row, f"{value:.2f}", ha="center", va="center",
                  color="white" if value > 0.5 else "black", fontsize=9)
    figure.tight_layout()
    with files.replaced_on_success(path) as partial:
        figure.savefig(partial, dpi=150)


def load_model_file(path):
    """Loads a `.keras` model, or a shipped preset by name; raises ValueError saying why it cannot."""
    import keras

    from keras_fer import pretrained

    if pretrained.names_a_preset(path):
        try:
            return pretrained.load(path)
        except pretrained.PresetError as error:
            raise ValueError(f"--model {path}: {error}") from None
    if not os.path.isfile(path):
        raise ValueError(f"--model {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"--model {path}: not a Keras model file (a .keras archive)")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for a broken archive.
        raise ValueError(f"--model {path}: not a loadable Keras model ({type(error).__name__}: {error})") from None


def model_class_names(path, model):
    """The classes that the outputs of `model`, loaded by `load_model_file(path)`, stand for.

    Those a preset carries (`model.class_names`), else those of the `.keras` file's run
    (`keras_fer.classifiers.resolve_class_names`). Raises ValueError when they are not known.
    """
    from keras_fer import pretrained
    from keras_fer.classifiers import ModelError, resolve_class_names

    if pretrained.names_a_preset(path):
        return model.class_names
    try:
        return resolve_class_names(path, model.output_shape[-1])
    except ModelError as error:
        raise ValueError(str(error)) from None


def labels_of_run(model_path):
    """`(labels, ferplus_path)` of a model: a preset's recorded label mode, or the config.yaml beside a run's model.

    A preset records no FERPlus file (it lies outside the package): `--ferplus` gives it.
    """
    from keras_fer import pretrained

    if pretrained.names_a_preset(model_path):
        return pretrained.metadata(model_path)["provenance"].get("labels", "fer2013"), None
    run_config = Path(model_path).resolve().parent / "config.yaml"
    if not run_config.is_file():
        return "fer2013", None
    from keras_fer.config import load_config

    data = load_config(run_config).data
    return data.labels, data.ferplus_path


def run_folder_settings(model_path):
    """How the run beside `model_path` read image folders, from its config.yaml; defaults for a preset.

    Returns:
        A dict: `class_map`, `detect_faces`, `validation_fraction` and `seed` (of the validation
        split), and `class_names` (the run's class_names.json, or None).
    """
    from keras_fer import pretrained

    settings = {"class_map": {}, "detect_faces": False, "validation_fraction": 0.1, "seed": 0, "class_names": None}
    run_config = Path(model_path).resolve().parent / "config.yaml"
    written_classes = run_config.parent / "class_names.json"
    if written_classes.is_file() and not pretrained.names_a_preset(model_path):
        settings["class_names"] = tuple(json.loads(written_classes.read_text()))
    if pretrained.names_a_preset(model_path) or not run_config.is_file():
        return settings
    from keras_fer.config import load_config

    config = load_config(run_config)
    data = config.data
    # load_config fills the keys a run written before image folders lacks with their defaults.
    settings.update(class_map=dict(data.class_map), detect_faces=data.detect_faces,
                    validation_fraction=data.validation_fraction, seed=config.training.seed)
    return settings


def scan_evaluation_folder(data_dir, split, labels, model_path, class_map=None, detect_faces=None):
    """Scans the folder `--data` names as the run of `model_path` read folders, with the model's
    classes, so that labels index its outputs.

    Args:
        data_dir: the image folder.
        split: `--split`, or None for every image (a folder without split folders only).
        labels: the model's label mode; for "folders", the run's recorded classes
            (class_names.json) or a preset's, else those of `data_dir`.
        model_path: the model (`.keras` file or preset name) whose run's settings apply
            (`run_folder_settings`).
        class_map: `--class-map`, overriding the run's.
        detect_faces: `--detect-faces`, overriding the run's.
    Returns:
        `(folder, detect_faces)`: the scanned `ImageFolder`, and whether to find the face in each image.
    Raises:
        ValueError: the folder cannot be read in that mode (a class the model lacks, an unknown
            folder), or the split is missing or needed.
    """
    from keras_fer import data as fer_data

    from keras_fer import pretrained

    settings = run_folder_settings(model_path)
    class_map = class_map if class_map is not None else settings["class_map"]
    classes = labels
    if labels == "folders" and pretrained.names_a_preset(model_path):
        # A preset's outputs are its label mode's classes: a folder of some of them is read against all.
        classes = labels_of_run(model_path)[0]
    elif labels == "folders" and settings["class_names"]:
        classes = settings["class_names"]
    try:
        folder = fer_data.scan_image_folder(data_dir, labels=classes, class_map=class_map,
                                            validation_fraction=settings["validation_fraction"], seed=settings["seed"])
    except fer_data.FolderFormatError as error:
        raise ValueError(f"--data {data_dir}: {error}") from None
    if split is None and folder.has_split_folders:
        raise ValueError(f"--data {data_dir} has split folders ({', '.join(folder.splits)}): pick one with --split")
    if split is not None and split not in folder.splits:
        raise ValueError(f"--data {data_dir} has no {split} images (it holds {', '.join(folder.splits)})")
    return folder, settings["detect_faces"] if detect_faces is None else detect_faces


def check_model_classes(model, class_names, model_path):
    """Raises ValueError unless the model has one output per class (the folder's classes index them)."""
    outputs = model.output_shape[-1]
    if outputs != len(class_names):
        raise ValueError(f"--model {model_path} has {outputs} outputs, but the data's classes are {len(class_names)}: "
                         f"{', '.join(class_names)}")


def check_csv_labels(path, labels):
    """Raises ValueError if `labels` is a mode a FER2013 CSV cannot be read in (`folders`)."""
    from keras_fer import data as fer_data

    if labels not in fer_data.LABEL_MODES:
        raise ValueError(f"--labels {labels} takes an image folder's classes, but --data {path} is a CSV: use one "
                         f"of {', '.join(fer_data.LABEL_MODES)}")


def check_split_present(path, split, labels, ferplus_path):
    """Raises ValueError if the file (validated on the way) has no rows of `split` to measure."""
    from keras_fer import data as fer_data

    splits = fer_data.count_fer2013(path, ferplus_path=ferplus_path, labels=labels)["splits"]
    if not splits.get(split, {}).get("kept"):
        raise ValueError(f"--data {path} has no {split} rows (it holds {', '.join(splits) or 'none'})")


def check_output_dir(output_dir, overwrite):
    """Raises ValueError if `output_dir` holds files (or is a file) and not `overwrite`."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output-dir {output_dir} is a file, not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"--output-dir {output_dir} is not empty; choose another directory or pass --overwrite")
    return output_dir


def write_report(report, output_dir):
    """metrics.json and confusion_matrix.png in `output_dir` (created if needed)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files.write_text(output_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
    tta = f", TTA {report['tta']}" if report["tta"] else ""
    plot_confusion_matrix(
        report["confusion_matrix"]["normalized"],
        report["confusion_matrix"]["class_names"],
        output_dir / "confusion_matrix.png",
        title=f"{report['split']}: accuracy {report['accuracy']:.1%}{tta}",
    )


def add_folder_arguments(parser, whose_run):
    """Adds `--class-map` and `--detect-faces`, how an image folder is read; `whose_run` ("the run's")
    names the run whose `data.class_map` and `data.detect_faces` are their defaults."""
    parser.add_argument("--class-map", nargs="+", metavar="FOLDER=CLASS",
                        help="image folders: class of a folder not named by a class or synonym, e.g. 1=Surprise "
                        f"(FOLDER= leaves it out); default: {whose_run} data.class_map")
    parser.add_argument("--detect-faces", action="store_true", default=None,
                        help=f"image folders: find and crop the face in each image (default: {whose_run} "
                        "data.detect_faces, else off: the images are face crops)")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Measure a trained .keras model on one split of a FER2013 CSV, or on a folder of images "
        "(one folder per class): accuracy, per-class precision/recall/F1, macro F1, confusion matrix "
        "(metrics.json) and its figure (confusion_matrix.png).",
    )
    parser.add_argument("--model", required=True,
                        help="trained model, e.g. runs/quickstart/best.keras, or a shipped preset name (fer2013)")
    parser.add_argument("--data", required=True,
                        help="fer2013.csv or .csv.gz (a run's data/synthetic_fer2013.csv), or an image folder "
                        "DIR/<class>/* or DIR/<split>/<class>/* (docs/data.md), read with the model's classes")
    parser.add_argument("--split", choices=("Training", "PublicTest", "PrivateTest"),
                        help="the split to measure: required for a CSV and for a folder with split folders "
                        "(train/val/test); a folder of class folders alone is measured whole by default, and "
                        "--split Training/PublicTest picks the seeded validation split training drew from it")
    parser.add_argument("--output-dir", help="where to write (default: evaluation-SPLIT[-TTA] beside the model, "
                        "evaluation-all for a whole folder)")
    parser.add_argument("--tta", nargs="?", const="ten-crop", choices=TTA_MODES,
                        help="test-time augmentation: ten-crop (default when given) or flip")
    parser.add_argument("--labels", choices=("fer2013", "ferplus", "ferplus8", "folders"),
                        help="label mode (default: the run's config.yaml beside the model, else fer2013); "
                        "folders: the classes of the run's training folder, or a preset's own")
    parser.add_argument("--ferplus", help="FERPlus vote file fer2013new.csv, for the ferplus label modes")
    add_folder_arguments(parser, "the run's")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--overwrite", action="store_true", help="replace what the output directory holds")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    folder = None
    try:
        labels, ferplus_path = labels_of_run(args.model)
        labels, ferplus_path = args.labels or labels, args.ferplus or ferplus_path
        from keras_fer.data import is_image_folder, parse_class_map

        if is_image_folder(args.data):
            folder, detect_faces = scan_evaluation_folder(args.data, args.split, labels, args.model,
                                                          parse_class_map(args.class_map), args.detect_faces)
        else:
            if not os.path.isfile(args.data):
                raise ValueError(f"--data {args.data}: no such file")
            if args.split is None:
                raise ValueError(f"--data {args.data} is a CSV: pick a split with --split (Training, PublicTest or "
                                 "PrivateTest)")
            check_csv_labels(args.data, labels)
            check_split_present(args.data, args.split, labels, ferplus_path)
        split_name = args.split or "all"
        default_dir = Path(args.model).parent / (f"evaluation-{split_name}" + (f"-{args.tta}" if args.tta else ""))
        output_dir = check_output_dir(args.output_dir or default_dir, args.overwrite)
        model = load_model_file(args.model)
        if folder is not None:
            check_model_classes(model, folder.class_names, args.model)
    except ValueError as error:
        sys.exit(f"evaluate.py: error: {error}")
    import keras

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    if folder is None:
        report = evaluate_split(model, args.data, args.split, labels=labels, ferplus_path=ferplus_path,
                                tta=args.tta, batch_size=args.batch_size)
    else:
        try:
            report = evaluate_folder(model, folder, args.split, detect_faces=detect_faces, tta=args.tta,
                                     batch_size=args.batch_size)
        except ValueError as error:
            sys.exit(f"evaluate.py: error: {error}")
        for kind in ("unreadable", "skipped"):
            if report[kind]:
                print(f"{kind}: {len(report[kind])} files left out: "
                      + "; ".join(f"{item['path']} ({item['reason']})" for item in report[kind][:10])
                      + (f"; and {len(report[kind]) - 10} more (metrics.json lists them)" if len(report[kind]) > 10
                         else ""))
    report.update({"model": str(args.model), "data": str(args.data), "labels": labels})
    try:
        write_report(report, output_dir)
    except files.FileWriteError as error:
        sys.exit(f"evaluate.py: error: {error}")
    print(f"{split_name}: accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} "
          f"({report['num_images']} faces); wrote {output_dir / 'metrics.json'} and confusion_matrix.png")
    return report
