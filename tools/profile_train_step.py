"""Where a training step's time goes: an op-level profile of `model.fit` steps, by op type and by layer.

The model, optimizer and in-memory batches are the training-throughput benchmark's
(`benchmarks.train_throughput`: built and compiled exactly as `train.py` does). After warm-up
steps (tracing, oneDNN kernel selection), TensorFlow's profiler records a few steps; this tool
reads the trace (`*.xplane.pb`) and adds up the time of every TensorFlow op kernel run on the
host, grouped by op type (Conv2D, its gradients, FusedBatchNorm, Softmax, ...) and by the
model's top-level layer that the op belongs to (stem_conv, stage1_block1, stage1_mask, ...) and
by part (backbone, masks, augmentation, the rest). Times are
summed over the threads that ran the kernels, so with two cores they may add up to about twice
the wall time. The report names the share of each group.

    python tools/profile_train_step.py                      # configs/fer2013_cpu.yaml, as trained
    python tools/profile_train_step.py --set runtime.mixed_precision=float32 \
        --output docs/results/train_step_profile_float32.json
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_OUTPUT = "docs/results/train_step_profile.json"
OUTSIDE = "(outside the model: optimizer, loss, metrics)"


def kernel_events(xspace):
    """(op name, op type, seconds) of every TensorFlow op kernel in the host plane of a profile.

    The host profiler names a kernel's event `<op name>:<op type>`, for example
    `StatefulPartitionedCall/gradient_tape/keras_fer_1/stage1_block1_1/conv1_1/convolution/
    Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter` (oneDNN kernels start with `_Mkl`);
    other host events (the executor, tf.data, Python) have no such name and are left out.
    """
    for plane in xspace.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                op_name, separator, op_type = name.rpartition(":")
                if separator and "/" in op_name and re.fullmatch(r"_?[A-Z]\w*", op_type):
                    yield op_name, op_type, event.duration_ps * 1e-12


def layer_of(op_name, model_name, layer_names):
    """The model's top-level layer that an op belongs to, from its name scope; gradients included.

    TensorFlow makes a name scope unique with a suffix (`keras_fer_1/stage1_block1_1/...`), so
    a scope matches a name with or without one.
    """
    def unsuffixed(scope):
        return re.sub(r"_\d+$", "", scope)

    parts = op_name.split("/")
    for index, scope in enumerate(parts[:-1]):
        if model_name in (scope, unsuffixed(scope)):
            layer = parts[index + 1]
            for name in (layer, unsuffixed(layer)):
                if name in layer_names:
                    return name
    return OUTSIDE


def part_of(layer):
    """The part of the network a top-level layer belongs to: masks, augmentation, backbone, or outside."""
    if layer == OUTSIDE:
        return layer
    if "_mask" in layer:  # the ECA-U-Net branches and their F * (1 + W) gates
        return "ECA-U-Net masks and gates"
    if layer == "augment":
        return "augmentation"
    return "backbone, stem and head"


def summarize(events, model_name, layer_names, steps, top):
    """Seconds per step by op type and by layer, largest first, with their shares."""
    by_type, by_layer, by_part = collections.Counter(), collections.Counter(), collections.Counter()
    for op_name, op_type, seconds in events:
        layer = layer_of(op_name, model_name, layer_names)
        by_type[op_type] += seconds / steps
        by_layer[layer] += seconds / steps
        by_part[part_of(layer)] += seconds / steps
    total = sum(by_type.values())

    def rows(counter, limit):
        return [{"name": name, "seconds_per_step": round(seconds, 4), "share": round(seconds / total, 4)}
                for name, seconds in counter.most_common(limit)]

    return {"kernel_seconds_per_step": round(total, 4), "by_part": rows(by_part, None),
            "by_layer": rows(by_layer, None), "by_op_type": rows(by_type, top)}


def profile(config, warmup, steps, logdir):
    """Runs `warmup` steps, then profiles `steps` more; returns (the model, wall seconds per profiled step)."""
    import tensorflow as tf

    from benchmarks import train_throughput

    model = train_throughput.compiled_model(config)
    settings = {**train_throughput.BASELINE, "mixed_precision": config.runtime.mixed_precision}
    inputs = train_throughput.training_inputs(config, settings, warmup + steps)
    model.fit(inputs, steps_per_epoch=warmup, epochs=1, verbose=0)
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    model.fit(inputs, steps_per_epoch=steps, epochs=1, verbose=0)
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    return model, wall


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/profile_train_step.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/fer2013_cpu.yaml", help="training configuration (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a config value, as train.py's --set (repeatable)")
    parser.add_argument("--warmup", type=int, default=3, help="steps run before profiling (default 3)")
    parser.add_argument("--steps", type=int, default=5, help="steps profiled (default 5)")
    parser.add_argument("--top", type=int, default=25, help="op types listed (default 25)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"JSON report (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error(f"--warmup and --steps must be at least 1. Received: {args.warmup}, {args.steps}")

    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from benchmarks import common, train_throughput
    from keras_fer import config as config_lib

    config = config_lib.load_config(args.config, args.overrides)
    try:
        train_throughput.class_names(config)
    except ValueError as error:
        parser.error(f"--config {args.config}: {error}")
    with tempfile.TemporaryDirectory() as logdir:
        model, wall = profile(config, args.warmup, args.steps, logdir)
        (trace,) = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        xspace = xplane_pb2.XSpace()
        with open(trace, "rb") as handle:
            xspace.ParseFromString(handle.read())
    summary = summarize(kernel_events(xspace), model.name, {layer.name for layer in model.layers}, args.steps, args.top)
    report = {
        **common.report_header(["keras_fer", "configs", "benchmarks", "tools"], tf, keras, np),
        "config": args.config,
        "overrides": args.overrides,
        "batch_size": config.training.batch_size,
        "mixed_precision": config.runtime.mixed_precision,
        "warmup_steps": args.warmup,
        "profiled_steps": args.steps,
        "wall_seconds_per_step": round(wall, 4),
        "images_per_second": round(config.training.batch_size / wall, 1),
        **summary,
    }
    common.write_report(report, Path(args.output))
    print(f"{report['images_per_second']} images/s, {wall:.3f} s a step (wall), "
          f"{summary['kernel_seconds_per_step']:.3f} s of op kernels a step (all threads)")
    for key in ("by_part", "by_layer", "by_op_type"):
        print(f"\n{key.replace('_', ' ')}:")
        for row in summary[key]:
            print(f"  {row['name']:48s} {row['seconds_per_step'] * 1e3:9.1f} ms  {row['share']:6.1%}")


if __name__ == "__main__":
    main()
