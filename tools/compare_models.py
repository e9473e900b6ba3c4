"""Accuracy of models and of probability-averaged ensembles on one split, each paired against a baseline.

Each MODEL argument is a network (a `.keras` file, a preset name, `PRESET:memberN`) or several
joined by `+`, an ensemble whose models' class probabilities are averaged with equal weights (a
preset that is itself an ensemble is averaged as one model: `ferplus+X` weighs X as much as the whole
pair, `ferplus:member1+ferplus:member2+X` weighs the three alike; either way the table's `networks`
counts three, the networks that the average runs). Every network is run once on the
split, however many arguments name it. The first argument is the baseline. Each other one is
compared with it face by face: its gain in points, the standard error of the mean paired
difference, and the faces it gets right that the baseline gets wrong and the reverse.

The decisions of docs/training.md that compare ensembles (the `ferplus` preset's rule) are
measured with it:

    python tools/compare_models.py --data ../shared/data/fer2013/fer2013_train_public.csv.gz \
        --split PublicTest --labels ferplus8 --ferplus ../shared/data/fer2013/fer2013new.csv --tta flip \
        ferplus runs/ferplus8_wide_finetune/best.keras \
        ferplus:member1+ferplus:member2+runs/ferplus8_wide_finetune/best.keras

The data may also be an image folder, read as `evaluate.py` reads it for the baseline's run: two
fine-tunes on a folder of your own faces, for example, on the validation split training drew:

    python tools/compare_models.py --data faces/ --split PublicTest --labels folders \
        runs/finetune/best.keras runs/scratch/best.keras runs/finetune/best.keras+runs/scratch/best.keras
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ENSEMBLE_SEPARATOR = "+"


def ensemble_members(argument):
    """The networks an ensemble argument names, in order: `"a+b"` gives `["a", "b"]`.

    >>> ensemble_members("ferplus:member1+runs/wide/best.keras")
    ['ferplus:member1', 'runs/wide/best.keras']
    """
    members = argument.split(ENSEMBLE_SEPARATOR)
    if not all(members):
        raise ValueError(f"{argument!r}: an empty network name; join networks as A+B")
    return members


def network_probabilities(names, images, class_names, tta, batch_size):
    """Class probabilities of each distinct model named on `images`, and how many networks each runs.

    Returns:
        `({name: (N, classes) array}, {name: networks})`; a preset or `.keras` file that is itself
        an ensemble runs several networks (`keras_fer.models.network_count`).

    Raises:
        ValueError: a network's outputs are not `class_names` in that order, since averaging or
            scoring them against the labels would then mix classes.
    """
    from keras_fer.evaluation import load_model_file, model_class_names, predict_probabilities
    from keras_fer.models import network_count

    class_names = tuple(class_names)
    probabilities, networks = {}, {}
    for name in dict.fromkeys(names):
        model = load_model_file(name)
        outputs = model.output_shape[-1]
        if outputs != len(class_names):
            raise ValueError(f"{name}: {outputs} outputs, but the labels have {len(class_names)} classes")
        network_classes = model_class_names(name, model)
        if network_classes != class_names:
            raise ValueError(f"{name}: its outputs are {', '.join(network_classes)}, but the labels index "
                             f"{', '.join(class_names)}")
        print(f"{name}: predicting {len(images)} faces", file=sys.stderr)
        probabilities[name] = predict_probabilities(model, images, tta=tta, batch_size=batch_size)
        networks[name] = network_count(model)
    return probabilities, networks


def compare(arguments, images, labels, class_names, tta=None, batch_size=256):
    """One row per argument: accuracy and, after the first, the paired comparison with the first.

    Args:
        arguments: model arguments as on the command line (`A`, `A+B`, ...); the first is the baseline.
        images, labels: the faces and their class indices.
        class_names: the classes `labels` index, which every network must output in that order.
        tta, batch_size: as `keras_fer.evaluation.predict_probabilities`.
    Returns:
        list of dicts: `model`, `networks` (how many networks its average runs, `ferplus` counting
        two), `accuracy`, and, but for the baseline, the entries of
        `keras_fer.evaluation.paired_comparison`.
    """
    from keras_fer.evaluation import paired_comparison

    ensembles = [ensemble_members(argument) for argument in arguments]
    probabilities, networks = network_probabilities([name for members in ensembles for name in members],
                                                    images, class_names, tta, batch_size)
    labels = np.asarray(labels)
    rows, baseline_correct = [], None
    for argument, members in zip(arguments, ensembles):
        average = np.mean([probabilities[name] for name in members], axis=0)
        correct = average.argmax(axis=-1) == labels
        row = {"model": argument, "networks": sum(networks[name] for name in members),
               "accuracy": float(correct.mean())}
        if baseline_correct is None:
            baseline_correct = correct
        else:
            row.update(paired_comparison(correct, baseline_correct))
        rows.append(row)
    return rows


def markdown_table(rows):
    """The rows as a Markdown table, the baseline first."""
    lines = ["| model | networks | accuracy | against the baseline, points (s.e.) |",
             "| --- | ---: | ---: | --- |"]
    for row in rows:
        against = "baseline" if "gain_points" not in row else (
            f"{row['gain_points']:+.2f} ({row['standard_error_points']:.2f}): right on "
            f"{row['right_where_baseline_wrong']} faces it gets wrong, wrong on {row['wrong_where_baseline_right']}")
        lines.append(f"| {row['model']} | {row['networks']} | {100 * row['accuracy']:.2f}% | {against} |")
    return "\n".join(lines)


def read_faces(args):
    """The faces to measure: `(images, labels, class_names, split, description)`.

    `split` is the split measured ("all" for a whole folder); `description` says what was read.

    A CSV gives one split (PublicTest by default) in a label mode. An image folder is read as
    `evaluate.py` reads it for the baseline's first network: its run's class map, face detection
    and seeded validation split, unless `--class-map` or `--detect-faces` say otherwise.
    """
    from keras_fer import data as fer_data

    if fer_data.is_image_folder(args.data):
        from keras_fer.evaluation import scan_evaluation_folder

        folder, detect_faces = scan_evaluation_folder(args.data, args.split, args.labels,
                                                      ensemble_members(args.models[0])[0],
                                                      fer_data.parse_class_map(args.class_map), args.detect_faces)
        images, labels = fer_data.read_image_folder(folder, args.split, detect_faces=detect_faces)
        split = args.split or "all"
        description = (f"{split} of the image folder {args.data}, classes {', '.join(folder.class_names)} "
                       f"(files left out: {len(folder.unreadable)} unreadable, {len(folder.skipped)} skipped while "
                       "reading)")
        class_names = folder.class_names
    else:
        from keras_fer.evaluation import check_csv_labels

        if not os.path.isfile(args.data):
            raise ValueError(f"--data {args.data}: no such file")
        check_csv_labels(args.data, args.labels)
        split = args.split or "PublicTest"
        images, labels = fer_data.read_fer2013(args.data, usage=split, labels=args.labels, ferplus_path=args.ferplus)
        description = f"{split} of {args.data}, labels {args.labels}"
        class_names = fer_data.class_names(args.labels)
    if len(images) < 2:
        raise ValueError(f"--data {args.data}: {len(images)} faces in {split}; need at least 2")
    return images, labels, class_names, split, description


def parse_args(argv=None):
    from keras_fer.evaluation import TTA_MODES, add_folder_arguments

    parser = argparse.ArgumentParser(
        prog="tools/compare_models.py",
        description="Accuracy of models and of ensembles (networks joined by +, probabilities averaged with "
        "equal weights) on one split of a FER2013 CSV or an image folder, each paired face by face against the "
        "first model.")
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="a .keras file, a preset name or PRESET:memberN, or several joined by + (an "
                        "ensemble); the first is the baseline")
    parser.add_argument("--data", required=True,
                        help="fer2013.csv or .csv.gz, or an image folder DIR/<class>/* or DIR/<split>/<class>/* "
                        "(docs/data.md)")
    parser.add_argument("--split", choices=("Training", "PublicTest", "PrivateTest"),
                        help="the split to measure (default: PublicTest of a CSV, every image of a folder of class "
                        "folders; a folder with split folders needs it)")
    parser.add_argument("--labels", default="fer2013", choices=("fer2013", "ferplus", "ferplus8", "folders"),
                        help="label mode (default: fer2013); folders: an image folder's own classes, or those the "
                        "baseline's run was trained on (its class_names.json)")
    parser.add_argument("--ferplus", help="FERPlus vote file fer2013new.csv, for the ferplus label modes")
    add_folder_arguments(parser, "the baseline run's")
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation of every network (flip: "
                        "each face with its mirror image)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--output", help="also write the rows as JSON to this file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        for argument in args.models:
            ensemble_members(argument)
        images, labels, class_names, split, description = read_faces(args)
        rows = compare(args.models, images, labels, class_names, tta=args.tta, batch_size=args.batch_size)
    except ValueError as error:
        sys.exit(f"compare_models.py: error: {error}")
    print(f"{description}, {len(images)} faces, TTA {args.tta or 'none'}")
    print(markdown_table(rows))
    if args.output:
        Path(args.output).write_text(json.dumps({"split": split, "data": args.data, "labels": args.labels,
                                                 "tta": args.tta, "faces": len(images), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
