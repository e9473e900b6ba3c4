"""What every benchmark report shares: machine, versions, commit, command, timing helpers.

Each benchmark writes one JSON report under `benchmarks/results/` that starts with
`report_header(...)` (the exact command, the machine with its load average, the library
versions and the git commit) and ends with `write_report(...)` (the load average again).
Benchmarks that must change process-wide TensorFlow settings between rows (dtype policy,
oneDNN, thread pools) measure each row in a fresh process with `run_child`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# The real FER2013 file (Training and PublicTest rows) shared beside the checkout.
DATA_FILE = REPO_ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_public.csv.gz"
# The two sizes every speed figure is given for.
CONFIGS = {"paper": "configs/paper.yaml", "cpu": "configs/fer2013_cpu.yaml"}
# CPU flags that decide which TensorFlow kernels are fast (oneDNN picks AVX-512 / AMX paths).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
# Printed by a child process before its JSON result, so that log lines above it do not matter.
RESULT_MARKER = "BENCHMARK-RESULT "


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict:
    """CPU model, cores, the speed-relevant CPU flags, platform and the load average now."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                 platform.processor())
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "cores_available_to_this_process": len(os.sched_getaffinity(0)),
        "cpu_flags": [flag for flag in SPEED_FLAGS if flag in flags],
        "platform": platform.platform(),
        "load_average_1_5_15_min_at_start": load_average(),
    }


def versions(*modules) -> dict:
    """Python's version and `__version__` of each imported module given."""
    found = {"python": platform.python_version()}
    found.update({module.__name__: module.__version__ for module in modules})
    return found


def git_commit(paths) -> str:
    """HEAD's commit, marked when any of `paths` (relative to the repository) has local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", *paths)
    return git("rev-parse", "HEAD") + (f" (modified: {', '.join(paths)})" if dirty else "")


def command() -> str:
    """The command line that started this process, as it could be typed again."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    program = ["-m", spec.name.removesuffix(".__main__")] if spec is not None else [sys.argv[0]]
    return shlex.join([Path(sys.executable).name, *program, *sys.argv[1:]])


def report_header(code_paths, *modules) -> dict:
    """The start of a report: command, machine, versions of `modules`, commit of `code_paths`."""
    return {
        "command": command(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "versions": versions(*modules),
        "git_commit": git_commit(code_paths),
    }


def write_report(report: dict, path: Path) -> None:
    """Adds the end time and load average and writes `report` as indented JSON to `path`."""
    report["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["machine"]["load_average_1_5_15_min_at_end"] = load_average()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {path}", flush=True)


def timed(function) -> tuple[float, object]:
    """(seconds, result) of one call of `function`."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def summarize_seconds(seconds: list[float]) -> dict:
    """Median, 90th percentile, min and max of a list of durations, in milliseconds."""
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "runs": len(ordered),
        "median_ms": round(1e3 * statistics.median(ordered), 3),
        "p90_ms": round(1e3 * p90, 3),
        "min_ms": round(1e3 * ordered[0], 3),
        "max_ms": round(1e3 * ordered[-1], 3),
    }


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose help is the module docstring (first paragraph, the rest as epilog).

    It has the hidden `--child JSON` option through which `run_child` starts a measurement.
    """
    paragraphs = doc.split("\n\n")
    parser = argparse.ArgumentParser(description=paragraphs[0], epilog="\n\n".join(paragraphs[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", type=json.loads, help=argparse.SUPPRESS)
    return parser


def run_child(module: str, payload: dict, env: dict | None = None, timeout: float | None = None) -> dict:
    """Runs `python -m module --child JSON` in a fresh process and returns the JSON it reports.

    The child reports with `report_to_parent`. A child that fails or times out gives
    {"error": ...} instead, so that one broken row does not lose the others.
    """
    argv = [sys.executable, "-m", module, "--child", json.dumps(payload)]
    try:
        done = subprocess.run(argv, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    return {"error": f"exit status {done.returncode}: " + " | ".join(done.stderr.strip().splitlines()[-3:])}


def report_to_parent(result: dict) -> None:
    """Prints a child's result where `run_child` finds it."""
    print(RESULT_MARKER + json.dumps(result), flush=True)
