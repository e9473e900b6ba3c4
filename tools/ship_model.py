"""Turns training runs' best models into the preset file shipped in the package.

    python tools/ship_model.py runs/fer2013_cpu                  # writes keras_fer/presets/fer2013.npz
    python tools/ship_model.py runs/fer2013_cpu --flip-average   # the same network averaging each face and its mirror
    python tools/ship_model.py ferplus:member1 runs/ferplus8_stride1 --preset ferplus --flip-average  # an ensemble
    python tools/ship_model.py runs/fer2013_wide --flip-average --weight-storage int8     # half the file
    python tools/ship_model.py ferplus:member1 ferplus:member2 runs/ferplus8_wide_finetune --preset ferplus \
        --flip-average --output /tmp/ferplus3.npz --keras-output /tmp/ferplus3.keras  # a candidate, to measure

Reads each run's `best.keras`, `config.yaml`, `command.txt` and `metrics.json`, and writes the
inference network's weights as float16 (or its kernels as int8 with a scale per output channel,
`--weight-storage int8`), with the network's build arguments, the class names
and where the weights come from (run, command, commit, best epoch, the run's validation
figures), as `keras_fer.pretrained.save` describes. Two or more sources make an ensemble that
averages its networks' probabilities (`keras_fer.models.build_ensemble`); a source may also be
a network already shipped (`fer2013`, `ferplus:member1`), taken with its weights and record as
they are. The shipped model is measured on the first source's validation split before the file
is written. Prints the file's size and sha256: put the sha256 into
`keras_fer.pretrained.PRESETS`, then measure the shipped file with `python evaluate.py --model
NAME ...` (docs/model_card.md). `--keras-output` also saves the model as shipped (the weights as
stored) as a `.keras` file: a candidate that `benchmarks.model_cost`, `evaluate.py` and
`tools/compare_models.py` measure before it replaces a preset.
"""

import argparse
import json
import os
import sys
from pathlib import Path

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides what the tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_fer import config as config_lib  # noqa: E402
from keras_fer import data as fer_data  # noqa: E402
from keras_fer import evaluation  # noqa: E402
from keras_fer import pretrained  # noqa: E402
from keras_fer.training import RunPaths, model_build_arguments  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/ship_model.py",
        description="Write runs' best models as a preset file for keras_fer.pretrained (float16 weights, or int8 kernels).",
    )
    parser.add_argument("sources", nargs="+", metavar="RUN",
                        help="a finished run directory (best.keras, config.yaml, metrics.json), or a shipped "
                             "network (fer2013, ferplus:member1); two or more make an ensemble")
    parser.add_argument("--preset", default="fer2013", choices=pretrained.available(), help="preset to write")
    parser.add_argument("--output", help="file to write (default: the preset's file in keras_fer/presets/)")
    parser.add_argument("--flip-average", action="store_true",
                        help="ship each run's network averaging each face's probabilities with its mirror image's "
                             "(build_model's flip_average: twice the cost of a face, in every export format)")
    parser.add_argument("--weight-storage", choices=pretrained.WEIGHT_STORAGES, default="float16",
                        help="float16 (default): every weight; int8: kernels of 1,024 values or more as int8 with a "
                             "float32 scale per output channel, the rest float16, about half the file; the shipped "
                             "model is measured with the weights as stored")
    parser.add_argument("--keras-output", metavar="PATH.keras",
                        help="also save the model as shipped (the weights as stored) as this .keras file, to measure "
                             "it with benchmarks.model_cost or evaluate.py before it replaces a preset")
    args = parser.parse_args(argv)
    if args.keras_output and not args.keras_output.endswith(".keras"):
        parser.error(f"--keras-output must name a .keras file. Received: --keras-output {args.keras_output}")
    return args


def run_network(run, flip_average):
    """(build, float16 weights, class names, {data path, labels, split}, provenance) of a finished run."""
    paths = RunPaths(run)
    for required in (paths.best_model, paths.config, paths.metrics, paths.command):
        if not required.is_file():
            sys.exit(f"ship_model.py: error: {required} not found: {run} is not a finished run")
    config = config_lib.load_config(paths.config)
    if config.data.labels not in fer_data.LABEL_MODES:
        sys.exit(f"ship_model.py: error: {paths.config}: data.labels is {config.data.labels!r}; a preset ships a "
                 f"network trained on a FER2013 CSV ({', '.join(fer_data.LABEL_MODES)}), the data it is measured on "
                 "before it is written")
    metrics = json.loads(paths.metrics.read_text())
    class_names = fer_data.class_names(config.data.labels)
    model = keras.saving.load_model(paths.best_model, compile=False)
    commands = [line for line in paths.command.read_text().splitlines() if line and not line.startswith("#")]
    validation = metrics["validation"]
    provenance = {
        "run": Path(run).name,
        "labels": config.data.labels,
        "targets": config.data.targets,
        "command": commands[0],
        "commit": metrics["code_version"],
        "seed": metrics["seed"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "wall_time_seconds": metrics["wall_time_seconds"],  # of the run's last invocation
        "invocations": len(commands),
        "run_validation": {"split": validation["split"], "accuracy": validation["accuracy"],
                           "macro_f1": validation["macro_f1"]},
    }
    build = model_build_arguments(config, len(class_names))
    if flip_average:
        build["flip_average"] = True
    data = {"path": metrics["data"]["path"], "labels": config.data.labels,
            "ferplus_path": config.data.ferplus_path, "split": validation["split"]}
    return build, pretrained.float16_weights(model, build), class_names, data, provenance


def shipped_network(name):
    """(build, float16 weights, class names, None, provenance) of one network already shipped."""
    try:
        metadata, build, weights = pretrained.preset_network(name)
    except pretrained.PresetError as error:
        sys.exit(f"ship_model.py: error: {error}")
    provenance = {key: value for key, value in metadata["provenance"].items() if key != "shipped_validation"}
    return build, weights, list(metadata["class_names"]), None, provenance


def main(argv=None):
    args = parse_args(argv)
    sources = [shipped_network(source) if pretrained.names_a_preset(source)
               else run_network(source, args.flip_average) for source in args.sources]
    class_names = sources[0][2]
    for source, (_, _, names, _, _) in zip(args.sources, sources):
        if list(names) != list(class_names):
            sys.exit(f"ship_model.py: error: {source} has classes {list(names)}, {args.sources[0]} "
                     f"{list(class_names)}: an ensemble's networks must give the same classes")
    data = next((source[3] for source in sources if source[3] is not None), None)
    if data is None:
        sys.exit("ship_model.py: error: name at least one run: its validation split measures the shipped model")
    networks = [(build, weights) for build, weights, _, _, _ in sources]
    as_stored = [(build, pretrained.stored_weights(weights, args.weight_storage)) for build, weights in networks]
    if len(networks) == 1:
        provenance = dict(sources[0][4])
    else:
        provenance = {"labels": data["labels"], "members": [source[4] for source in sources]}
    # The shipped model (the weights as stored, float32 computation) measured as a user will load it.
    shipped = pretrained.model_from_networks(as_stored, class_names)
    report = evaluation.evaluate_split(shipped, data["path"], data["split"], labels=data["labels"],
                                       ferplus_path=data["ferplus_path"], class_names=class_names)
    provenance["shipped_validation"] = {key: report[key] for key in (
        "split", "num_images", "accuracy", "macro_f1", "per_class", "confusion_matrix")}
    what = f"an ensemble of {len(networks)} networks" if len(networks) > 1 else "one network"
    print(f"Shipped weights on {data['split']}: accuracy {report['accuracy']:.4f} ({what}; each run's best.keras: "
          + ", ".join(f"{source[4]['run_validation']['accuracy']:.4f}" for source in sources) + ")")
    output = Path(args.output) if args.output else pretrained.preset_path(args.preset)
    output.parent.mkdir(parents=True, exist_ok=True)
    sha256 = pretrained.save(output, networks, class_names, provenance, args.weight_storage)
    print(f"Wrote {output}: {output.stat().st_size / 2**20:.1f} MiB, sha256 {sha256}")
    if args.keras_output:
        Path(args.keras_output).parent.mkdir(parents=True, exist_ok=True)
        shipped.save(args.keras_output)
        print(f"Wrote {args.keras_output}: the same model as a .keras file")


if __name__ == "__main__":
    main()
