"""Writes the measured part of docs/model_card.md from the shipped preset file, never by hand.

The figures come from the metadata inside `keras_fer/presets/<preset>.npz` (written by
`tools/ship_model.py`): the training command, commit, seed, epochs and wall time of the run,
and the shipped weights' own validation figures (accuracy, macro F1, per-class precision and
recall, confusion matrix). The block sits between two marker comments:

    python tools/model_card.py                             # print the block
    python tools/model_card.py --card docs/model_card.md   # rewrite the block in place
    python tools/model_card.py --preset ferplus --card docs/model_card_ferplus.md
"""

import argparse
import inspect
import os
import sys
from pathlib import Path

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides what the tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from results_table import ResultsError, replace_between_markers, table  # noqa: E402

from keras_fer import pretrained  # noqa: E402
from keras_fer.models import build_model  # noqa: E402

START_MARKER = "<!-- model-card:start -->"
END_MARKER = "<!-- model-card:end -->"
# How a preset file stores its weights (its metadata's weight_storage; files written before it existed are float16).
STORAGE_TEXT = {"float16": "float16 weights", "int8": "int8 kernels with a scale per output channel, the rest float16"}


def card_command(preset):
    """The command that rewrites `preset`'s card: docs/model_card.md for fer2013, docs/model_card_<preset>.md else."""
    if preset == "fer2013":
        return "python tools/model_card.py --card docs/model_card.md"
    return f"python tools/model_card.py --preset {preset} --card docs/model_card_{preset}.md"


def network_rows(build, provenance, prefix=""):
    """The card's rows of one network: its structure, its training run and the run's own figure."""
    # A file shipped before an option existed was built with the option's default.
    defaults = {name: parameter.default for name, parameter in inspect.signature(build_model).parameters.items()}
    build = {**defaults, **build}
    run_validation = provenance["run_validation"]
    minutes = provenance["wall_time_seconds"] / 60
    return [
        [f"{prefix}network", f"ResNet34 + ECA-U-Net masks (depths {', '.join(map(str, build['mask_depths']))}, "
                             f"mask width {build['mask_width']:g}), input {build['input_size']}, stem "
                             f"`{build['stem']}`, width {build['width']}"
                             + ("; each face's probabilities averaged with its mirror image's"
                                if build["flip_average"] else "")],
        [f"{prefix}training run", f"`results/{provenance['run']}/`, commit `{provenance['commit'][:7]}`, seed "
                                  f"{provenance['seed']}"],
        [f"{prefix}command", f"`{provenance['command']}`"],
        # A file shipped before vote targets existed was trained on labels.
        [f"{prefix}training targets", "each face's share of the annotators' votes (`data.targets: votes`)"
                                      if provenance.get("targets") == "votes" else "one label a face"],
        [f"{prefix}epochs", f"{provenance['epochs_run']} run, epoch {provenance['best_epoch']} chosen on "
                            f"{run_validation['split']}"],
        [f"{prefix}wall time", f"{minutes:.0f} min (training and the final evaluation)"
                               if provenance.get("invocations", 1) == 1 else
                               f"{minutes:.0f} min in the last of its {provenance['invocations']} invocations "
                               "(its training from where the previous one stopped, and the final evaluation)"],
        [f"{prefix}the run's own figure", f"{100 * run_validation['accuracy']:.2f}% ("
                                          + ("each face alone, " if build["flip_average"] else "")
                                          + "float32 weights, bfloat16 computation, as trained)"],
    ]


def card_block(preset="fer2013"):
    """The Markdown block for `preset`, markers included."""
    record = pretrained.metadata(preset)
    provenance = record["provenance"]
    shipped = provenance["shipped_validation"]
    names = record["class_names"]
    path = pretrained.preset_path(preset)
    if pretrained.MEMBERS_KEY in record:
        builds = record[pretrained.MEMBERS_KEY]
        names_one_by_one = ", ".join(f"`{preset}:{pretrained.member_name(index)}`"
                                     for index in range(1, len(builds) + 1))
        networks = [["networks", f"an ensemble of {len(builds)}, each face's probabilities averaged over them "
                                 f"({names_one_by_one} name them one by one)"]]
        for index, (build, member) in enumerate(zip(builds, provenance["members"]), start=1):
            networks += network_rows(build, member, prefix=f"member{index}: ")
    else:
        networks = network_rows(record["build"], provenance)
    lines = [
        START_MARKER,
        f"<!-- generated by `{card_command(preset)}` from {path.name}'s metadata -->",
        "",
        *table(["item", "value"], [
            ["preset", f"`keras_fer.pretrained.load({preset!r})` ({path.stat().st_size / 2**20:.1f} MiB, "
                       f"{STORAGE_TEXT[record.get('weight_storage', 'float16')]}, "
                       f"sha256 `{pretrained.PRESETS[preset]['sha256'][:16]}…`)"],
            *networks,
            [f"{shipped['split']} accuracy", f"**{100 * shipped['accuracy']:.2f}%** on {shipped['num_images']:,} "
                                             f"faces (macro F1 {shipped['macro_f1']:.3f})"],
        ]),
        "",
        f"Per class on {shipped['split']}:",
        "",
        *table(["class", "precision", "recall", "F1", "faces"], [
            [name, *(f"{100 * shipped['per_class'][name][key]:.1f}%" for key in ("precision", "recall", "f1")),
             f"{sum(shipped['confusion_matrix']['counts'][index]):,}"]
            for index, name in enumerate(names)
        ]),
        "",
        f"Confusion matrix on {shipped['split']} (rows: true class, columns: predicted):",
        "",
        *table(["true \\ predicted", *names],
               [[name, *map(str, counts)] for name, counts in zip(names, shipped["confusion_matrix"]["counts"])]),
        "",
        END_MARKER,
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--preset", default="fer2013", choices=pretrained.available())
    parser.add_argument("--card", type=Path, help="rewrite the block between the markers in this file")
    args = parser.parse_args(argv)
    try:
        block = card_block(args.preset)
        if args.card:
            args.card.write_text(replace_between_markers(args.card.read_text(), block, START_MARKER, END_MARKER))
        else:
            print(block)
    except (ResultsError, pretrained.PresetError, OSError) as error:
        sys.exit(f"model_card.py: error: {error}")


if __name__ == "__main__":
    main()
