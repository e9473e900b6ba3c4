"""Train the ResNet34 + ECA-U-Net network: `python train.py --config configs/quickstart.yaml`.

See docs/training.md. Everything happens in `keras_fer.training`; this script parses the
command line, reports bad input as one clear error, and sets quieter TensorFlow logs.
"""

import argparse
import json
import os
import sys

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides the progress output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Train on FER2013, an image folder of your own faces, or the built-in synthetic faces, with "
        "model.fit and Keras callbacks; --init fine-tunes a shipped preset. Running the same command again on an "
        "unfinished run resumes it: one that was interrupted, or that training.time_limit_minutes stopped with "
        "epochs left.",
    )
    parser.add_argument("--config", help="YAML configuration, e.g. configs/paper.yaml (required)")
    parser.add_argument("--data", help="fer2013.csv or .csv.gz, or an image folder DIR/<class>/* or "
                        "DIR/<split>/<class>/* (docs/data.md); overrides data.source")
    parser.add_argument("--init", help="start from these weights: a shipped preset (fer2013), one network of an "
                        "ensemble preset (ferplus:member1, ferplus:member2) or a trained "
                        ".keras file; overrides training.init (fine-tuning: configs/finetune.yaml)")
    parser.add_argument("--output-dir", help="run directory (default: runs/<config name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.epochs=5 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run the output directory holds")
    parser.add_argument("--dry-run", action="store_true",
                        help="build data, model, optimizer and callbacks, print their settings as JSON, train nothing")
    parser.add_argument("--list-keys", action="store_true", help="print every config key with its type and doc")
    args = parser.parse_args(argv)
    if args.config is None and not args.list_keys:
        parser.error("the following arguments are required: --config")
    return args


def main(argv=None):
    args = parse_args(argv)
    from keras_fer import config as config_lib

    if args.list_keys:
        print("\n".join(config_lib.describe()))
        return None
    overrides = args.overrides + ([f"data.source={json.dumps(args.data)}"] if args.data else []) \
        + ([f"training.init={json.dumps(args.init)}"] if args.init else [])
    try:
        config = config_lib.load_config(args.config, overrides)
    except config_lib.ConfigError as error:
        sys.exit(f"train.py: error: {error}")
    output_dir = args.output_dir or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])

    from keras_fer import files, training

    try:
        command = training.command_line(sys.argv if argv is None else ["train.py", *argv])
        result = training.train(config, output_dir, overwrite=args.overwrite, dry_run=args.dry_run, command=command)
    except training.RunError as error:
        sys.exit(f"train.py: error: {error}")
    except files.FileWriteError as error:  # a full disk: the run's last good files remain, so it can resume
        sys.exit(f"train.py: error: {error}. Free space, then run the same command again to resume.")
    if args.dry_run:
        print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
