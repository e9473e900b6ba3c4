"""``python -m keras_fer.data PATH``: validate a FER2013 CSV and count its rows by split and class."""

from __future__ import annotations

import argparse
import json
import sys
import time

from keras_fer.data.csv_format import USAGES, FER2013FormatError
from keras_fer.data.selection import LABEL_MODES, count_fer2013

_EPILOG = """\
examples:
  python -m keras_fer.data fer2013.csv.gz
  python -m keras_fer.data fer2013.csv --ferplus fer2013new.csv --labels ferplus8 --json

exit status: 0 if the file is valid, 1 if it breaks the format (the message
names file, line and problem), 2 for bad arguments.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_fer.data",
        description="Check a FER2013 CSV (Kaggle format, plain or .gz): validate every row and print\n"
        "the number of rows per split and class, the time taken and the rows per second.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="fer2013.csv or fer2013.csv.gz (header emotion,pixels,Usage)")
    parser.add_argument(
        "--usage", nargs="+", choices=USAGES, default=list(USAGES),
        help="splits to report (default: all present in the file)",
    )  # fmt: skip
    parser.add_argument(
        "--labels", choices=LABEL_MODES,
        help="label mode: fer2013 = the emotion column (7 classes); ferplus = FERPlus majority vote, 7 classes; "
        "ferplus8 = the same with contempt (8 classes). Default: ferplus with --ferplus, else fer2013",
    )  # fmt: skip
    parser.add_argument("--ferplus", metavar="FILE", help="FERPlus vote file fer2013new.csv, row-aligned with PATH")
    parser.add_argument("--skip-bad-rows", action="store_true", help="skip and list bad rows instead of failing on the first")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
