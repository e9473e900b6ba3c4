"""Builds the README's results table from the run records in `results/`, never by hand.

Each run directory `results/<run>/` holds what training wrote (model weights left out):
`config.yaml` (the resolved configuration), `metrics.json` (best epoch, validation and test
figures with confusion matrices, commit, seed, wall time), `history.csv`, and `command.txt`
(the command that trained it). This script reads `config.yaml` and `metrics.json` of every
run and prints Markdown: a table, one row per run, with the paper's figures beside; the
per-class recall of every run; a sentence on what the ablation shows (runs whose
configurations differ only in `model.use_masks` / `model.use_eca`), with the sampling error
of the accuracies; and each run's confusion matrix. The table is of one label mode's runs
(`--labels`, default fer2013, the README's "Results on FER2013"); runs of other label modes (the
FERPlus preset's) have their own record and model card. The Markdown sits between two marker
comments, so that `--readme` can replace the previous table in place:

    python tools/results_table.py                      # print the table
    python tools/results_table.py --readme README.md   # rewrite the table between the markers
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides what the tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_fer import config as config_lib  # noqa: E402

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
# FER2013 test accuracy (%) reported in the literature, as the project's spec lists them
# (Tian, Zhang, Huo, HSMS 2024, Table 3, and the papers it cites). The spec maps this paper's
# network to the full model and the Residual Masking Network to masks without ECA; no figure
# is given for a plain ResNet34 trained the same way.
PAPER_FIGURES = {
    "full": ("78.1", "Tian et al. 2024 (this network)"),
    "no_eca": ("74.14", "ResMaskingNet, Pham et al. 2020"),
    "no_masks": (None, None),
}
VARIANT_NAMES = {
    "full": "ResNet34 + ECA-U-Net masks",
    "no_eca": "masks without ECA",
    "no_masks": "plain ResNet34 (no masks)",
}
# The model keys that only shape the masks: a plain ResNet34 is the same network whatever they say.
MASK_KEYS = ("use_masks", "use_eca", "mask_depths", "mask_width", "mask_activation", "eca_gamma", "eca_b")


class ResultsError(ValueError):
    """A run directory lacks a file, or a file lacks a figure the table needs."""


def variant(config):
    """"full", "no_eca" or "no_masks", from the run's model configuration."""
    model = config["model"]
    if not model["use_masks"]:
        return "no_masks"
    return "full" if model["use_eca"] else "no_eca"


def load_run(directory):
    """The figures of one run directory as a dict; ResultsError names a missing file or key."""
    directory = Path(directory)
    try:
        # Through the schema: an option newer than the run reads as its default, the paper's value.
        config = config_lib.load_config(directory / "config.yaml").to_dict()
        metrics = json.loads((directory / "metrics.json").read_text())
        validation = metrics["validation"]
        return {
            "name": directory.name,
            "config": config,
            "variant": variant(config),
            "input_size": config["model"]["input_size"],
            "stem": config["model"]["stem"],
            "width": config["model"]["width"],
            "mask_width": config["model"]["mask_width"],
            "validation_split": validation["split"],
            "validation_accuracy": validation["accuracy"],
            "validation_macro_f1": validation["macro_f1"],
            "validation_images": validation["num_images"],
            "recall": {name: figures["recall"] for name, figures in validation["per_class"].items()},
            "class_names": validation["confusion_matrix"]["class_names"],
            "confusion": validation["confusion_matrix"]["counts"],
            "best_epoch": metrics["best_epoch"],
            "epochs_run": metrics["epochs_run"],
            "wall_time_seconds": metrics["wall_time_seconds"],
            # A resumed run's wall time is its last invocation's (older metrics.json files lack the count).
            "epochs_this_invocation": metrics.get("epochs_this_invocation", metrics["epochs_run"]),
            "code_version": metrics["code_version"],
            "seed": metrics["seed"],
        }
    except config_lib.ConfigError as error:
        raise ResultsError(f"{directory}: {error}") from None
    except FileNotFoundError as error:
        raise ResultsError(f"{directory}: {Path(error.filename).name} is missing") from None
    except KeyError as error:
        raise ResultsError(f"{directory}: no {error.args[0]!r} in config.yaml or metrics.json") from None


def load_runs(results_dir, labels="fer2013"):
    """Every run under `results_dir` (directories holding a metrics.json) trained on label mode `labels`, by name."""
    directories = sorted(path.parent for path in Path(results_dir).glob("*/metrics.json"))
    runs = [load_run(directory) for directory in directories]
    return [run for run in runs if run["config"]["data"]["labels"] == labels]


def config_without(run, keys):
    """The run's configuration without the model keys `keys`, as comparable text."""
    model = {key: value for key, value in run["config"]["model"].items() if key not in keys}
    return json.dumps({**run["config"], "model": model}, sort_keys=True)


def ablation_group(full, runs):
    """`full` and the runs that differ from it in the mask switch alone: {"full", "no_masks", "no_eca"}.

    A plain ResNet34 matches whatever the mask-only keys say; masks without ECA match in every key
    but `use_eca`.
    """
    group = {"full": full}
    for run in runs:
        if run["variant"] == "no_masks" and config_without(run, MASK_KEYS) == config_without(full, MASK_KEYS):
            group.setdefault("no_masks", run)
        if run["variant"] == "no_eca" and config_without(run, ("use_eca",)) == config_without(full, ("use_eca",)):
            group.setdefault("no_eca", run)
    return group


def ablation_sentence(runs):
    """What the ablation shows: one sentence per full-model run, against the runs equal to it but for the masks."""
    sentences = []
    for full in runs:
        if full["variant"] != "full":
            continue
        group = ablation_group(full, runs)
        effects = []
        if "no_masks" in group:
            effects.append(f"the ECA-U-Net masks change accuracy by {points(full, group['no_masks'])} points over "
                           "a plain ResNet34")
        if "no_eca" in group:
            effects.append(f"ECA inside the masks {'' if effects else 'changes accuracy '}by "
                           f"{points(full, group['no_eca'])} points over masks without it")
        if not effects:
            sentences.append(f"Ablation of {full['name']}: no plain-ResNet34 or no-ECA run of the same configuration "
                             "yet.")
            continue
        split = full["validation_split"]
        compared = " and ".join(group[name]["name"] for name in ("no_masks", "no_eca") if name in group)
        missing = "" if "no_masks" in group else "; no plain-ResNet34 run of the same configuration yet"
        sentence = (f"Ablation of {full['name']} against {compared} (same configuration and budget, {split} "
                    f"accuracy{missing}): " + ", and ".join(effects))
        error = 100 * standard_error(full)
        sentences.append(
            sentence + f". Each run is one seed; one standard error of an accuracy on {full['validation_images']:,} "
            f"images is {error:.1f} points, so differences within about {2 * math.sqrt(2) * error:.1f} points "
            "(two standard errors of a difference) are not evidence either way.")
    return "\n\n".join(sentences) or "Ablation: no full-model run has a plain-ResNet34 run of the same configuration yet."


def points(run, baseline):
    """Accuracy difference in percentage points, signed."""
    return f"{100 * (run['validation_accuracy'] - baseline['validation_accuracy']):+.1f}"


def standard_error(run):
    """Binomial standard error of the run's validation accuracy (a fraction)."""
    accuracy = run["validation_accuracy"]
    return math.sqrt(accuracy * (1 - accuracy) / run["validation_images"])


def table(header, rows):
    """Markdown table lines: the header, its rule, one line per row (cells already formatted)."""
    return [f"| {' | '.join(cells)} |" for cells in (header, ["---"] * len(header), *rows)]


def recall_table(runs):
    """Per-class validation recall, one row per run (runs' class lists must agree)."""
    names = runs[0]["class_names"]
    for run in runs:
        if run["class_names"] != names:
            raise ResultsError(f"results/{run['name']}: classes {run['class_names']} differ from {names}")
    return table(["run", *names], [[run["name"], *(f"{100 * run['recall'][name]:.1f}%" for name in names)]
                                   for run in runs])


def confusion_matrix(run):
    """The run's validation confusion matrix (rows: true class, columns: predicted) in <details>."""
    names = run["class_names"]
    rows = [[name, *map(str, counts)] for name, counts in zip(names, run["confusion"])]
    return [f"<details><summary>{run['name']}: {run['validation_split']} confusion matrix "
            "(rows true, columns predicted)</summary>", "", *table(["true \\ predicted", *names], rows),
            "", "</details>"]


def format_wall_time(run):
    """Minutes of the run's wall time; a resumed run's says it is the last invocation's."""
    minutes = f"{run['wall_time_seconds'] / 60:.0f} min"
    if run["epochs_this_invocation"] < run["epochs_run"]:
        minutes += f" (the last {run['epochs_this_invocation']} of {run['epochs_run']} epochs: resumed)"
    return minutes


def model_name(run):
    """The variant's name, with the masks' width where it is not the paper's."""
    name = VARIANT_NAMES[run["variant"]]
    if run["variant"] != "no_masks" and run["mask_width"] != 1:
        name += f" (mask width {run['mask_width']:g})"
    return name


def markdown_table(runs):
    """The Markdown block, markers included."""
    header = ["run", "model", "input, stem, width", "epochs (best)", "validation accuracy", "validation macro F1",
              "paper's FER2013 test accuracy", "wall time", "commit"]
    rows = []
    for run in runs:
        # The paper's figures are FER2013's; a run on other labels has none to stand beside.
        figure, source = PAPER_FIGURES[run["variant"]] if run["config"]["data"]["labels"] == "fer2013" else (None, None)
        rows.append([
            f"[{run['name']}](results/{run['name']}/)", model_name(run),
            f"{run['input_size']}, {run['stem']}, {run['width']}", f"{run['epochs_run']} ({run['best_epoch']})",
            f"{100 * run['validation_accuracy']:.2f}% ({run['validation_split']})",
            f"{run['validation_macro_f1']:.3f}", f"{figure}% ({source})" if figure else "—",
            format_wall_time(run), f"`{run['code_version'][:7]}`",
        ])
    lines = [START_MARKER, "<!-- generated by `python tools/results_table.py --readme README.md` from results/*/ -->",
             "", *table(header, rows)]
    if not runs:
        lines.append("| (no runs in results/ yet) | | | | | | | | |")
    else:
        lines += ["", "Per-class recall on the validation split:", "", *recall_table(runs)]
    lines += ["", ablation_sentence(runs), ""]
    for run in runs:
        lines += [*confusion_matrix(run), ""]
    return "\n".join(lines + [END_MARKER])


def replace_between_markers(text, block, start_marker=START_MARKER, end_marker=END_MARKER):
    """`text` with the part from `start_marker` to `end_marker` replaced by `block`."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise ResultsError(f"the file has no {start_marker} ... {end_marker} pair to replace")
    return text[:start] + block + text[end + len(end_marker):]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--results", type=Path, default=Path("results"), help="directory of run directories")
    parser.add_argument("--readme", type=Path, help="rewrite the table between the markers in this file")
    parser.add_argument("--labels", default="fer2013", choices=config_lib.LABEL_MODES,
                        help="the label mode whose runs are tabled (default fer2013)")
    args = parser.parse_args(argv)
    try:
        block = markdown_table(load_runs(args.results, args.labels))
        if args.readme:
            args.readme.write_text(replace_between_markers(args.readme.read_text(), block))
        else:
            print(block)
    except (ResultsError, OSError) as error:
        sys.exit(f"results_table.py: error: {error}")


if __name__ == "__main__":
    main()
