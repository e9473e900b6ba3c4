"""Run a keras-fer configuration on a GPU machine that has JAX but no TensorFlow.

Two steps:

    # here, where TensorFlow and the data are: one folder under 60 MiB
    python tools/gpu_run.py pack --data ../shared/data/fer2013/fer2013_train_public.csv.gz \
        --ferplus ../shared/data/fer2013/fer2013new.csv --out .gpu

    # there (only Python, NumPy and JAX needed): install the packed wheels, rebuild the CSV,
    # train with KERAS_BACKEND=jax for at most --minutes, write the run directory
    python3 .gpu/gpu_run.py run --pack .gpu --config configs/paper.yaml --minutes 8 --output-dir $OUT/run

The folder holds FER2013 as xz-compressed uint8 arrays made by the project's own reader, with
FERPlus's vote file (xz-compressed) when `--ferplus` is given, the wheels the far machine lacks
(keras and its pure helpers, keras-fer itself), the configs and the scripts. `run` imports nothing
outside the standard library until the wheels are installed, and points `data.ferplus_path` at
the packed votes, so that the FERPlus configs run as they are:

    python3 .gpu/gpu_run.py run --pack .gpu --config configs/ferplus8_cpu.yaml --minutes 8 --output-dir $OUT/run \
        --set data.targets=votes
"""

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# What Keras 3 needs that the GPU machines' image lacks (it has numpy, h5py, ml-dtypes, rich,
# absl-py, packaging, pyyaml, matplotlib and jax).
MISSING_ON_DEVICE = ("keras", "namex", "optree")
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = (
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux1_x86_64",
)
PACK_LIMIT_BYTES = 60 * 2**20
ARRAYS = "fer2013_arrays.npy.xz"
# The shipped presets (keras_fer/presets/NAME.npz); read from the files, as this runs without keras_fer installed.
PRESETS = {path.stem for path in (REPO_ROOT / "keras_fer" / "presets").glob("*.npz")}
VOTES = "fer2013new.csv.xz"


def installed_version(name):
    from importlib.metadata import version

    return version(name)


def download_wheels(wheel_dir, python_version, presets):
    """Wheels of `MISSING_ON_DEVICE` at the versions installed here, and keras-fer's own with only `presets`."""
    pins = [f"{name}=={installed_version(name)}" for name in MISSING_ON_DEVICE]
    platforms = [arg for platform in DEVICE_PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(wheel_dir), *pins],
        check=True,
    )
    # Each shipped preset is 6.2 MiB, and a paper-size run needs none: the wheel is built from a copy
    # of the package that holds only the presets asked for, so that the pack fits the device's carry.
    unwanted = [f"{name}.npz" for name in PRESETS - set(presets)]
    with tempfile.TemporaryDirectory() as source:
        for name in ("setup.cfg", "pyproject.toml", "README.md"):
            shutil.copy(REPO_ROOT / name, source)
        shutil.copytree(REPO_ROOT / "keras_fer", Path(source) / "keras_fer",
                        ignore=shutil.ignore_patterns("__pycache__", *unwanted))
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "-w", str(wheel_dir), source],
            check=True,
        )


def save_arrays(path, data, usages):
    """Reads `usages` of `data` with the project's reader; writes images, labels, usage codes.

    The file is three `.npy` arrays back to back inside one xz stream: uint8 images
    (N, 48, 48, 1), int32 labels (N,), uint8 usage codes (N,) indexing `usages`.
    Returns the number of rows.
    """
    import numpy as np

    from keras_fer.data import read_fer2013

    parts = [read_fer2013(data, usage=usage) for usage in usages]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    codes = np.concatenate([np.full(len(labels), index, np.uint8) for index, (_, labels) in enumerate(parts)])
    with lzma.open(path, "wb", preset=6) as stream:
        for array in (images, labels, codes):
            np.save(stream, array)
    return len(labels)


def pack(args):
    out = Path(args.out)
    if out.exists():
        if not args.overwrite:
            sys.exit(f"gpu_run.py pack: {out} exists; pass --overwrite to replace it")
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    started = time.monotonic()
    rows = save_arrays(out / ARRAYS, args.data, args.usage) if args.data else 0
    print(f"data: {rows:,} rows of {args.data} -> {out / ARRAYS} ({time.monotonic() - started:.0f} s)")
    if args.ferplus:
        with open(args.ferplus, "rb") as source, lzma.open(out / VOTES, "wb", preset=6) as packed_votes:
            shutil.copyfileobj(source, packed_votes)
        print(f"votes: {args.ferplus} -> {out / VOTES}")
    download_wheels(out / "wheels", args.python_version, args.presets)
    shutil.copytree(REPO_ROOT / "configs", out / "configs")
    for script in ("train.py", "evaluate.py", "tools/gpu_run.py"):
        shutil.copy(REPO_ROOT / script, out / Path(script).name)
    (out / "pack.json").write_text(json.dumps({"data": str(args.data), "ferplus": args.ferplus, "presets": args.presets,
                                                  "usages": args.usage, "rows": rows}, indent=1))
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"pack: {out} holds {size / 2**20:.1f} MiB")
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.stat().st_size > 2**20:
            print(f"  {path.relative_to(out)}: {path.stat().st_size / 2**20:.1f} MiB")
    if size > PACK_LIMIT_BYTES:
        sys.exit(f"gpu_run.py pack: {size / 2**20:.1f} MiB is over the {PACK_LIMIT_BYTES / 2**20:.0f} MiB limit")


def unpack_csv(args):
    """Rebuilds a Kaggle-format CSV from the packed arrays (runs with the packed wheels)."""
    import numpy as np

    from keras_fer.data import write_fer2013_csv

    pack_dir = Path(args.pack)
    usages = json.loads((pack_dir / "pack.json").read_text())["usages"]
    with lzma.open(pack_dir / ARRAYS, "rb") as stream:
        images, labels, codes = (np.load(stream) for _ in range(3))
    write_fer2013_csv(args.csv, images, labels, [usages[code] for code in codes])
    print(f"data: {len(labels):,} rows -> {args.csv}")


def run(args):
    pack_dir = Path(args.pack).resolve()
    site = Path(args.site)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    wheels = sorted(str(path) for path in (pack_dir / "wheels").glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
         "--upgrade", "--target", str(site), *wheels],
        check=True,
    )
    config = pack_dir / "configs" / Path(args.config).name
    data_args = []
    if (pack_dir / ARRAYS).exists() and not args.data:
        csv = site.parent / "fer2013.csv"
        subprocess.run([sys.executable, __file__, "unpack-csv", "--pack", str(pack_dir), "--csv", str(csv)],
                       env=env, check=True)
        data_args = ["--data", str(csv)]
    elif args.data:
        data_args = ["--data", args.data]
    if (pack_dir / VOTES).exists():
        votes = site.parent / "fer2013new.csv"
        with lzma.open(pack_dir / VOTES, "rb") as packed_votes, open(votes, "wb") as target:
            shutil.copyfileobj(packed_votes, target)
        # First, so that a --set data.ferplus_path given to run still wins.
        data_args += ["--set", f"data.ferplus_path={votes}"]
    command = [
        sys.executable, str(pack_dir / "train.py"), "--config", str(config), "--output-dir", args.output_dir,
        *data_args, "--set", f"training.time_limit_minutes={args.minutes}",
        *[item for override in args.set for item in ("--set", override)],
    ]
    print("running:", " ".join(command), flush=True)
    # The time limit stops training cleanly between steps; the hard timeout is the backstop.
    subprocess.run(command, env=env, cwd=pack_dir, check=True, timeout=args.minutes * 60 + args.grace_seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="build the folder to carry (here)")
    p.add_argument("--data", help="fer2013.csv(.gz) to pack as arrays; without it, the run generates synthetic faces")
    p.add_argument("--ferplus", help="FERPlus's fer2013new.csv, row-aligned with --data, for the FERPlus configs")
    p.add_argument("--presets", nargs="*", default=[], choices=sorted(PRESETS), metavar="NAME",
                   help="shipped presets to carry, 6.2 MiB each (default none): fer2013 for a `--init fer2013` run")
    p.add_argument("--usage", nargs="+", default=["Training", "PublicTest"], help="splits to pack")
    p.add_argument("--out", default=".gpu", help="the folder to write (default .gpu)")
    p.add_argument("--python-version", default=DEVICE_PYTHON, help=f"Python of the far machine (default {DEVICE_PYTHON})")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=pack)
    r = commands.add_parser("run", help="install, rebuild the data and train with JAX (there)")
    r.add_argument("--pack", default=".gpu")
    r.add_argument("--config", required=True, help="a config name from the pack's configs/, e.g. paper.yaml")
    r.add_argument("--output-dir", required=True)
    r.add_argument("--minutes", type=float, required=True, help="training time limit")
    r.add_argument("--grace-seconds", type=float, default=180, help="time after the limit for evaluation")
    r.add_argument("--data", help="use this CSV instead of the packed arrays")
    r.add_argument("--site", default="/tmp/keras_fer_site", help="where the wheels are installed")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed on to train.py")
    r.set_defaults(func=run)
    u = commands.add_parser("unpack-csv", help="(used by run) packed arrays -> FER2013 CSV")
    u.add_argument("--pack", required=True)
    u.add_argument("--csv", required=True)
    u.set_defaults(func=unpack_csv)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
