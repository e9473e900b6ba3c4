"""Writes faces of a FER2013 CSV as an image folder, one folder per class, as a user's data set would be.

    python tools/write_face_folder.py --data ../shared/data/fer2013/fer2013_train_public.csv.gz \
        --ferplus ../shared/data/fer2013/fer2013new.csv --labels ferplus8 \
        --split Training=train:0.2 --split PublicTest=val --output runs/ferplus_folder

Each `--split USAGE=FOLDER[:FRACTION]` writes the CSV split USAGE (in the label mode's labels) to
OUTPUT/FOLDER/<class>/<row>.png, keeping a seeded, stratified FRACTION of each class (all of it by
default). The fine-tuning comparison in results/ (docs/training.md) reads such a folder.
"""

import argparse
import os
import sys
from pathlib import Path

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides what the tool prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from keras_fer import data as fer_data  # noqa: E402


def parse_split(text):
    """`Training=train:0.2` -> ("Training", "train", 0.2)."""
    usage, equals, rest = text.partition("=")
    folder, _, fraction = rest.partition(":")
    if not equals or usage not in fer_data.USAGES or not folder:
        raise argparse.ArgumentTypeError(f"expected USAGE=FOLDER[:FRACTION] with USAGE one of "
                                         f"{', '.join(fer_data.USAGES)}. Received: {text!r}")
    try:
        fraction = float(fraction) if fraction else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"FRACTION must be a number in (0, 1]. Received: {text!r}") from None
    if not 0 < fraction <= 1:
        raise argparse.ArgumentTypeError(f"FRACTION must be in (0, 1]. Received: {text!r}")
    return usage, folder, fraction


def stratified_subset(labels, fraction, seed):
    """Indices of a seeded `fraction` of each class (at least one face of each), in index order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(members)[: max(1, round(fraction * len(members)))])
    return np.sort(np.concatenate(chosen))


def write_split(images, labels, class_names, directory):
    """Writes each face as directory/<class name lowercased>/<index>.png; returns faces per class."""
    counts = {}
    for index, (face, label) in enumerate(zip(images, labels)):
        name = class_names[label]
        folder = directory / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(folder / f"{index:05d}.png"), face):
            raise OSError(f"{folder / f'{index:05d}.png'}: could not be written")
        counts[name] = counts.get(name, 0) + 1
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/write_face_folder.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="FER2013 CSV (plain or .gz)")
    parser.add_argument("--labels", default="fer2013", choices=fer_data.LABEL_MODES, help="label mode of the classes")
    parser.add_argument("--ferplus", help="FERPlus vote file fer2013new.csv, for the ferplus label modes")
    parser.add_argument("--split", dest="splits", action="append", type=parse_split, required=True,
                        metavar="USAGE=FOLDER[:FRACTION]", help="a CSV split to write (repeatable)")
    parser.add_argument("--output", required=True, help="the folder to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the FRACTION draws")
    args = parser.parse_args(argv)
    output = Path(args.output)
    if output.exists():
        sys.exit(f"write_face_folder.py: error: --output {output} exists; choose a new folder")
    class_names = fer_data.class_names(args.labels)
    for usage, folder, fraction in args.splits:
        images, labels = fer_data.read_fer2013(args.data, usage=usage, labels=args.labels, ferplus_path=args.ferplus)
        chosen = stratified_subset(labels, fraction, args.seed)
        counts = write_split(images[chosen], labels[chosen], class_names, output / folder)
        print(f"{usage} -> {os.path.join(args.output, folder)}: {len(chosen)} faces, "
              + ", ".join(f"{name} {count}" for name, count in counts.items()))


if __name__ == "__main__":
    main()
