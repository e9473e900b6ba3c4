"""Plots validation accuracy against training time for the runs in `results/`, from their history.csv.

The time axis is the cumulative `train_seconds` of the epochs (training batches only, as
`keras_fer.training.EpochThroughput` logs it; validation and checkpointing add 10-20 s an
epoch), so that runs made on different days compare by the work they did. Runs trained on
different labels (FER2013's, FERPlus's, an image folder's) get a panel each. Each curve is
labelled with the run name and its configuration's input size, stem, width and mask switches.

    python tools/accuracy_curves.py --output docs/accuracy_vs_time.png
"""

import argparse
import csv
import os
import sys
from pathlib import Path

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides what the tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_fer import config as config_lib  # noqa: E402


def read_curve(directory):
    """(minutes, validation accuracy in %) lists of one run directory."""
    with open(directory / "history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    minutes, accuracy, total = [], [], 0.0
    for row in rows:
        total += float(row["train_seconds"])
        minutes.append(total / 60)
        accuracy.append(100 * float(row["val_accuracy"]))
    return minutes, accuracy


# Panel titles by `data.labels`: accuracies against different labels do not share an axis.
PANEL_TITLES = {
    "fer2013": "FER2013's labels (7 classes), validation on PublicTest",
    "ferplus": "FERPlus majority labels (7 classes), validation on PublicTest",
    "ferplus8": "FERPlus majority labels (8 classes), validation on PublicTest",
    "folders": "image folders, validation on each run's held-out folder",
}


def curve_label(name, model):
    """The run's name with its configuration's input size, stem, width and mask switches."""
    return (f"{name} ({model.input_size} px, {model.stem} stem, width {model.width}"
            f"{'' if model.use_masks else ', no masks'}"
            f"{'' if model.mask_width == 1 or not model.use_masks else f', mask width {model.mask_width:g}'}"
            f"{'' if model.use_eca or not model.use_masks else ', no ECA'})")


def plot(results_dir, output):
    """Writes the PNG: one panel per label mode, each run a curve; returns the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    directories = sorted(path.parent for path in Path(results_dir).glob("*/history.csv"))
    if not directories:
        raise FileNotFoundError(f"{results_dir}: no */history.csv")
    panels = {}
    for directory in directories:
        # Through the schema: an option newer than the run reads as its default, the paper's value.
        config = config_lib.load_config(directory / "config.yaml")
        panels.setdefault(config.data.labels, []).append((directory, config.model))
    figure = Figure(figsize=(14, 4.5 * len(panels)))
    FigureCanvasAgg(figure)
    for index, (labels, runs) in enumerate(panels.items(), start=1):
        axes = figure.add_subplot(len(panels), 1, index)
        # Ten colours, then the same ten dashed and dotted: every curve stays distinguishable.
        for number, (directory, model) in enumerate(runs):
            minutes, accuracy = read_curve(directory)
            axes.plot(minutes, accuracy, marker="o", markersize=2.5, color=f"C{number % 10}",
                      linestyle=("-", "--", ":")[number // 10 % 3], label=curve_label(directory.name, model))
        axes.set_title(PANEL_TITLES.get(labels, f"data.labels {labels}"), fontsize=10)
        axes.set_xlabel("training time, minutes (sum of the epochs' train_seconds)")
        axes.set_ylabel("validation accuracy, %")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(output, dpi=110, bbox_inches="tight")  # the legends sit outside the axes
    return figure


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="directory of run directories")
    parser.add_argument("--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    try:
        plot(args.results, args.output)
    except (OSError, KeyError) as error:
        sys.exit(f"accuracy_curves.py: error: {error}")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
