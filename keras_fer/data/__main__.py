"""``python -m keras_fer.data PATH``: validate a FER2013 CSV, or check an image folder, and count by split and class."""

from __future__ import annotations

import argparse
import json
import sys
import time

from keras_fer.data.csv_format import USAGES, FER2013FormatError
from keras_fer.data.folder_layout import LABEL_MODES_WITH_FOLDERS, FolderFormatError
from keras_fer.data.folders import count_image_folder, is_image_folder, parse_class_map
from keras_fer.data.selection import count_fer2013

_EPILOG = """\
examples:
  python -m keras_fer.data fer2013.csv.gz
  python -m keras_fer.data fer2013.csv --ferplus fer2013new.csv --labels ferplus8 --json
  python -m keras_fer.data faces/ --class-map pain=Pain 1=Surprise --validation-fraction 0.2

An image folder is DIR/<class>/<images> or DIR/<split>/<class>/<images> (docs/data.md,
"Image folders"): its report gives each folder's class, the images per split and
class, the unreadable files (left out) and the files that are not images.

exit status: 0 if the file or folder is valid (unreadable images are reported, not
fatal), 1 if it breaks the format (the message names file or folder and problem),
2 for bad arguments.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_fer.data",
        description="Check a FER2013 CSV (Kaggle format, plain or .gz): validate every row and print\n"
        "the number of rows per split and class, the time taken and the rows per second.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="fer2013.csv or fer2013.csv.gz (header emotion,pixels,Usage), or an image folder")
    parser.add_argument(
        "--usage", nargs="+", choices=USAGES, default=list(USAGES),
        help="splits to report (default: all present in the file)",
    )  # fmt: skip
    parser.add_argument(
        "--labels", choices=LABEL_MODES_WITH_FOLDERS,
        help="label mode: fer2013 = the emotion column (7 classes); ferplus = FERPlus majority vote, 7 classes; "
        "ferplus8 = the same with contempt (8 classes); folders (image folders only) = the classes of the "
        "folders found. Default: ferplus with --ferplus, else fer2013; folders for an image folder",
    )  # fmt: skip
    parser.add_argument("--class-map", nargs="+", metavar="FOLDER=CLASS",
                        help="image folders: the class of a folder not named by a class or synonym, e.g. pain=Pain "
                        "(a new class) or 1=Surprise; FOLDER= leaves the folder out")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="image folders without split folders: share of each class drawn as PublicTest (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="image folders: seed of that validation split (default 0)")
    parser.add_argument("--ferplus", metavar="FILE", help="FERPlus vote file fer2013new.csv, row-aligned with PATH")
    parser.add_argument("--skip-bad-rows", action="store_true", help="skip and list bad rows instead of failing on the first")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if is_image_folder(args.path):
        return folder_main(args)
    if args.labels == "folders":
        print(f"error: --labels folders is for image folders; {args.path} is not a directory", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        report = count_fer2013(args.path, args.ferplus, args.labels, args.skip_bad_rows)
    except (FER2013FormatError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    report["splits"] = {usage: split for usage, split in report["splits"].items() if usage in args.usage}
    report["seconds"] = round(seconds, 6)  # a small file reads in under a millisecond
    report["rows_per_second"] = round(report["rows"] / seconds, 1)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def folder_main(args: argparse.Namespace) -> int:
    """The image-folder check: scan, then print the report (a table or JSON)."""
    start = time.perf_counter()
    try:
        report = count_image_folder(args.path, args.labels or "folders", parse_class_map(args.class_map),
                                    args.validation_fraction, args.seed)
    except (FolderFormatError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report["splits"] = {split: counts for split, counts in report["splits"].items() if split in args.usage}
    report["seconds"] = round(time.perf_counter() - start, 6)
    print(json.dumps(report, indent=2) if args.json else format_folder_report(report))
    return 0


def format_folder_report(report: dict) -> str:
    """The report of :func:`count_image_folder` as text: folder mapping, a table of splits, problems."""
    names = report["class_names"]
    width = max([len(name) for name in names] + [6])
    mapping = ", ".join(f"{folder} -> {name if name is not None else '(left out)'}"
                        for folder, name in report["folders"].items())
    lines = [
        f"{report['path']}: {report['images']} readable images in {report['layout']}, labels {report['labels']}",
        f"classes: {', '.join(f'{i} {name}' for i, name in enumerate(names))}",
        f"folders: {mapping}",
        f"{'split':<12}" + "".join(f"{name:>{width + 1}}" for name in names) + f"{'images':>8}",
    ]
    lines += [f"{split:<12}" + "".join(f"{n:>{width + 1}}" for n in counts["classes"].values()) + f"{counts['images']:>8}"
              for split, counts in report["splits"].items()]
    unreadable = report["unreadable"]
    if unreadable:
        lines.append(f"unreadable: {len(unreadable)} files left out")
        lines += [f"  {item['path']}: {item['reason']}" for item in unreadable]
    if report["ignored"]:
        lines.append("ignored (not read as images): " + ", ".join(f"{n} {ending}" for ending, n in report["ignored"].items()))
    lines.append(f"{report['seconds']:.2f} s")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """The report of :func:`count_fer2013` as a table, one split a row."""
    names = list(next(iter(report["splits"].values()))["classes"]) if report["splits"] else []
    width = max([len(name) for name in names] + [8])
    header = f"{'split':<12}" + "".join(f"{name:>{width + 1}}" for name in names) + f"{'kept':>8}{'dropped':>9}"
    rows = [
        f"{usage:<12}" + "".join(f"{n:>{width + 1}}" for n in split["classes"].values()) + f"{split['kept']:>8}{split['dropped']:>9}"
        for usage, split in report["splits"].items()
    ]
    skipped = report["skipped_lines"]
    return "\n".join(
        [f"{report['path']}: {report['rows']} valid rows, labels {report['labels']}", header, *rows]
        + ([f"skipped {len(skipped)} bad rows on lines {', '.join(map(str, skipped))}"] if skipped else [])
        + [f"{report['seconds']:.2f} s, {report['rows_per_second']:.0f} rows/s"]
    )


if __name__ == "__main__":
    sys.exit(main())
