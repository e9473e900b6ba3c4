"""Turns a training run's best model into the preset file shipped in the package.

    python tools/ship_model.py runs/fer2013_cpu                  # writes keras_fer/presets/fer2013.npz
    python tools/ship_model.py runs/fer2013_cpu --flip-average   # the same network averaging each face and its mirror

Reads the run's `best.keras`, `config.yaml`, `command.txt` and `metrics.json`, and writes
the inference network's weights as float16, with the network's build arguments, the class
names and where the weights come from (run, command, commit, best epoch, the run's
validation figures), as `keras_fer.pretrained.save` describes. Prints the file's size and
sha256: put the sha256 into `keras_fer.pretrained.PRESETS`, then measure the shipped file
with `python evaluate.py --model fer2013 ...` (docs/model_card.md).
"""

import argparse
import json
import sys
from pathlib import Path

import keras

from keras_fer import config as config_lib
from keras_fer import data as fer_data
from keras_fer import evaluation
from keras_fer import pretrained
from keras_fer.training import RunPaths, model_build_arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/ship_model.py",
        description="Write a run's best model as a float16 preset file for keras_fer.pretrained.",
    )
    parser.add_argument("run", help="a finished run directory (best.keras, config.yaml, metrics.json)")
    parser.add_argument("--preset", default="fer2013", choices=pretrained.available(), help="preset to write")
    parser.add_argument("--output", help="file to write (default: the preset's file in keras_fer/presets/)")
    parser.add_argument("--flip-average", action="store_true",
                        help="ship the network that averages each face's probabilities with its mirror image's "
                             "(build_model's flip_average: twice the cost of a face, in every export format)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    paths = RunPaths(args.run)
    for required in (paths.best_model, paths.config, paths.metrics, paths.command):
        if not required.is_file():
            sys.exit(f"ship_model.py: error: {required} not found: {args.run} is not a finished run")
    config = config_lib.load_config(paths.config)
    metrics = json.loads(paths.metrics.read_text())
    class_names = fer_data.class_names(config.data.labels)
    model = keras.saving.load_model(paths.best_model, compile=False)
    commands = [line for line in paths.command.read_text().splitlines() if line and not line.startswith("#")]
    validation = metrics["validation"]
    provenance = {
        "run": Path(args.run).name,
        "labels": config.data.labels,
        "targets": config.data.targets,
        "command": commands[0],
        "commit": metrics["code_version"],
        "seed": metrics["seed"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "wall_time_seconds": metrics["wall_time_seconds"],
        "run_validation": {"split": validation["split"], "accuracy": validation["accuracy"],
                           "macro_f1": validation["macro_f1"]},
    }
    build = model_build_arguments(config, len(class_names))
    if args.flip_average:
        build["flip_average"] = True
    weights = pretrained.float16_weights(model, build)
    # The shipped network (float16 weights, float32 computation) measured as a user will load it.
    shipped = pretrained.build_with_weights(build, weights, class_names)
    report = evaluation.evaluate_split(shipped, metrics["data"]["path"], validation["split"],
                                       labels=config.data.labels, ferplus_path=config.data.ferplus_path,
                                       class_names=class_names)
    provenance["shipped_validation"] = {key: report[key] for key in (
        "split", "num_images", "accuracy", "macro_f1", "per_class", "confusion_matrix")}
    views = ", each face averaged with its mirror image" if args.flip_average else ""
    print(f"Shipped weights on {validation['split']}: accuracy {report['accuracy']:.4f}{views} "
          f"(the run's best.keras: {validation['accuracy']:.4f})")
    output = Path(args.output) if args.output else pretrained.preset_path(args.preset)
    output.parent.mkdir(parents=True, exist_ok=True)
    sha256 = pretrained.save(output, build, weights, class_names, provenance)
    print(f"Wrote {output}: {output.stat().st_size / 2**20:.1f} MiB, sha256 {sha256}")


if __name__ == "__main__":
    main()
