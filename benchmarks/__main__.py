"""Runs every benchmark, each writing its JSON report under benchmarks/results/.

    python -m benchmarks            # the full set, under 20 minutes on 2 cores
    python -m benchmarks --quick    # smoke run of the same code, a few minutes

Each benchmark runs as its own command (printed before it starts and recorded in its
report), so any one of them can be rerun alone. See docs/benchmarks.md.
"""

import argparse
import shlex
import subprocess
import sys
import time

from benchmarks.common import REPO_ROOT, load_average

# (module, options of the full run, options of the quick run)
BENCHMARKS = (
    ("benchmarks.data_pipeline", [], ["--output", "benchmarks/results/data_pipeline_quick.json"]),
    ("benchmarks.train_throughput", [], ["--quick"]),
    ("benchmarks.inference", [], ["--quick"]),
    ("benchmarks.video", [], ["--quick"]),
)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rows, steps and calls")
    parser.add_argument("--only", nargs="+", choices=[module.split(".")[1] for module, _, _ in BENCHMARKS],
                        help="run only these benchmarks")
    args = parser.parse_args(argv)
    started, failed = time.monotonic(), []
    for module, full, quick in BENCHMARKS:
        if args.only and module.split(".")[1] not in args.only:
            continue
        argv = [sys.executable, "-m", module, *(quick if args.quick else full)]
        print(f"\n$ {shlex.join(argv)}   (load average {load_average()})", flush=True)
        start = time.monotonic()
        if subprocess.run(argv, cwd=REPO_ROOT).returncode:
            failed.append(module)
        print(f"{module}: {time.monotonic() - start:.0f} s", flush=True)
    print(f"\nall benchmarks: {time.monotonic() - started:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
