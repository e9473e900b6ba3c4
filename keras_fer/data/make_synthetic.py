"""``python -m keras_fer.data.make_synthetic PATH``: write a synthetic FER2013 CSV (no download needed)."""

from __future__ import annotations

import argparse

from keras_fer.data.csv_format import CLASS_NAMES, USAGES
from keras_fer.data.synthetic import DEFAULT_NUM_PER_CLASS, write_synthetic_fer2013


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments and writes the file."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_fer.data.make_synthetic",
        description="Write synthetic faces in the exact FER2013 CSV format (gzip if PATH ends in .gz).",
    )
    parser.add_argument("path", help="output file, e.g. synthetic/fer2013.csv.gz")
    parser.add_argument(
        "--per-class", nargs=3, type=int, metavar=("TRAINING", "PUBLIC_TEST", "PRIVATE_TEST"),
        default=[DEFAULT_NUM_PER_CLASS[usage] for usage in USAGES],
        help="faces per class in each split (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the data set is a function of this seed (default: 0)")
    args = parser.parse_args(argv)
    path = write_synthetic_fer2013(args.path, dict(zip(USAGES, args.per_class)), seed=args.seed)
    print(f"wrote {path}: {', '.join(f'{usage} {n * len(CLASS_NAMES)}' for usage, n in zip(USAGES, args.per_class))} rows")


if __name__ == "__main__":
    main()
