"""Benchmark of the FER2013 input pipeline against a naive pandas + NumPy loader.

Measures, in one run on the same file (images per second):

(a) decoding the whole file through ``fer2013_dataset`` (all splits), both
    with the up-front validating pass (a cold start) and without it (the row
    index already cached, as for the second dataset of a file);
(b) feeding one epoch of shuffled Training batches (batch 64), without and
    with ``cache=True`` (second epoch, from memory);
(c) the NumPy reader ``read_fer2013`` (validates and decodes);
(d) the naive loader: ``pandas.read_csv`` then ``np.array(s.split())`` per row;

and writes them with the ratios to (d), plus the machine, versions, git commit
and the command, as JSON::

    python -m benchmarks.data_pipeline \\
        --csv ../shared/data/fer2013/fer2013_train_public.csv.gz \\
        --output benchmarks/results/data_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import DATA_FILE, RESULTS_DIR, report_header, timed, write_report  # noqa: E402
from keras_fer.data import USAGES, fer2013_dataset, read_fer2013  # noqa: E402


def naive_load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The loader found in most FER2013 tutorials: pandas, then one np.array per row."""
    frame = pd.read_csv(path)
    images = np.stack([np.array(pixels.split(), dtype=np.uint8).reshape(48, 48, 1) for pixels in frame["pixels"]])
    return images, frame["emotion"].to_numpy(np.int32)


def count_images(dataset: tf.data.Dataset) -> int:
    return sum(int(labels.shape[0]) for _, labels in dataset)


def measure(name: str, images: int, seconds: float, note: str) -> dict:
    print(f"{name:<42} {images:>6} images {seconds:7.2f} s {images / seconds:9.0f} images/s", flush=True)
    return {"images": images, "seconds": round(seconds, 3), "images_per_second": round(images / seconds, 1), "what": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DATA_FILE, help="FER2013 CSV (plain or .gz)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "data_pipeline.json")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    report = report_header(["keras_fer/data", "benchmarks/data_pipeline.py"], tf, np, pd)
    report.update({"file": str(args.csv), "results": {}})
    results = report["results"]

    args.csv.read_bytes()  # the file in the OS page cache for every loader alike
    # First, in a fresh process: no row index is cached yet, so this includes validation.
    seconds, images = timed(lambda: count_images(fer2013_dataset(args.csv, usage=USAGES[:2], batch_size=1024)))
    results["tf_data_decode_cold"] = measure("(a) tf.data, validation + decode", images, seconds, "fer2013_dataset(all rows, batch 1024) built and iterated, up-front validating pass included")
    seconds, images = timed(lambda: count_images(fer2013_dataset(args.csv, usage=USAGES[:2], batch_size=1024)))
    results["tf_data_decode_indexed"] = measure("(a) tf.data, decode (row index cached)", images, seconds, "the same with the row index already cached: in-graph decoding only")

    training = fer2013_dataset(args.csv, "Training", batch_size=args.batch_size, shuffle=True, seed=0)
    seconds, images = timed(lambda: count_images(training))
    results["tf_data_training_epoch"] = measure("(b) tf.data, shuffled Training epoch", images, seconds, f"one epoch, batch {args.batch_size}, exact shuffle, no cache")
    cached = fer2013_dataset(args.csv, "Training", batch_size=args.batch_size, shuffle=True, seed=0, cache=True)
    count_images(cached)
    seconds, images = timed(lambda: count_images(cached))
    results["tf_data_training_epoch_cached"] = measure("(b) tf.data, shuffled epoch from cache", images, seconds, "second epoch with cache=True (decoded images in memory)")

    seconds, (numpy_images, _) = timed(lambda: read_fer2013(args.csv, usage=USAGES[:2]))
    results["numpy_reader"] = measure("(c) read_fer2013 (validates + decodes)", len(numpy_images), seconds, "read_fer2013, Training + PublicTest, validation included")
    del numpy_images

    seconds, (naive_images, _) = timed(lambda: naive_load(args.csv))
    results["naive_pandas_numpy"] = measure("(d) naive pandas + np.array(s.split())", len(naive_images), seconds, "pandas.read_csv + per-row np.array(s.split(), uint8), all rows")
    del naive_images

    naive_rate = results["naive_pandas_numpy"]["images_per_second"]
    report["ratio_to_naive"] = {name: round(result["images_per_second"] / naive_rate, 2) for name, result in results.items() if name != "naive_pandas_numpy"}
    report["note"] = (
        "One run, wall-clock times. The CPU is shared with other engineers' jobs while this ran (see the load "
        "averages against the available cores), so absolute rates are noisy; the ratios come from the same run."
    )
    write_report(report, args.output)
    print(json.dumps(report["ratio_to_naive"], indent=2))


if __name__ == "__main__":
    main()
