"""Markdown tables of the benchmark reports in benchmarks/results/, for docs/benchmarks.md.

    python -m benchmarks.report                              # print the tables
    python -m benchmarks.report --docs docs/benchmarks.md    # rewrite them between the markers

The tables are read from the JSON files only, so the documentation cannot drift from the
measurements: rerun the benchmarks, then this.
"""

import argparse
import json
from pathlib import Path

from benchmarks.common import REPO_ROOT, RESULTS_DIR
from tools.results_table import replace_between_markers

START_MARKER = "<!-- benchmarks:start -->"
END_MARKER = "<!-- benchmarks:end -->"


def table(header, rows):
    """A Markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def run_line(report):
    """One line naming the command, commit, machine and load of a report."""
    machine = report["machine"]
    changed = " with local changes" if "modified" in report["git_commit"] else ""
    return (f"`{report['command']}` at commit `{report['git_commit'][:7]}`{changed}, "
            f"{report.get('started_utc', 'time not recorded')} "
            f"({machine['cpu']}, {machine['logical_cores']} logical cores; load average "
            f"{machine['load_average_1_5_15_min_at_start'][0]} at the start, "
            f"{machine['load_average_1_5_15_min_at_end'][0]} at the end).")


def changes(row, baseline):
    """The settings in which a row differs from the baseline, as text."""
    changed = {key: value for key, value in row["settings"].items() if baseline.get(key) != value}
    return ", ".join(f"{key}={value}" for key, value in changed.items()) or "baseline"


def train_throughput_section(report):
    configurations, baseline = report["configurations"], report["definitions"]["baseline"]
    matmul = report["matmul"]["runs_before_and_after"]
    best = {dtype: max(run[dtype]["flops_per_second"] for run in matmul if dtype in run) for dtype in ("float32", "bfloat16")}
    sizes = table(
        ["configuration", "backbone input, width", "parameters", "forward GFLOPs/image", "training GFLOPs/image"],
        [[f"{name} (`{config['config_file']}`)", f"{config['backbone_input'][0]}, {config['width']}",
          f"{config['parameters']:,}", f"{config['forward_flops_per_image'] / 1e9:.3f}",
          f"{config['training_flops_per_image'] / 1e9:.3f}"] for name, config in configurations.items()],
    )
    rows = []
    for row in report["rows"]:
        if "step" not in row:
            rows.append([row["config"], f"{changes(row, baseline)} (failed: {row['error']})", row["batch_size"],
                         *["—"] * 7, f"{row['load_average_at_start'][0]:.1f}"])
            continue
        step = row["step"]
        rows.append([row["config"], changes(row, baseline), row["batch_size"], f"{row['images_per_second']:.1f}",
                     f"{step['median_ms']:.0f} ({step['p90_ms']:.0f})", f"{row['first_step_seconds']:.0f}",
                     f"{row['cores_busy']:.1f}", f"{row['flops_per_second'] / 1e9:.1f}",
                     f"{row['matmul_same_process']['float32']['flops_per_second'] / 1e9:.0f}",
                     f"**{row['figure_of_merit']:.2f}**", f"{row['load_average_at_start'][0]:.1f}"])
    return "\n\n".join([
        "### Training throughput (`benchmarks/train_throughput.py`)",
        run_line(report),
        f"Reference: a {report['matmul']['size']}² `tf.linalg.matmul` reached {best['float32'] / 1e9:.1f} GFLOP/s in "
        f"float32 and {best['bfloat16'] / 1e9:.1f} GFLOP/s in bfloat16 (best of fresh processes before and after "
        "the rows). The figure of merit divides a row's GFLOP/s by the float32 matmul of its own process, measured "
        "right after its steps.",
        sizes,
        table(["configuration", "change from baseline", "batch", "images/s", "step ms, median (p90)",
               "first step s", "cores busy", "GFLOP/s", "matmul GFLOP/s", "figure of merit", "load at start"], rows),
    ])


def inference_section(report):
    parts = ["### Inference (`benchmarks/inference.py`)", run_line(report)]
    for name, configuration in report["configurations"].items():
        if "variants" not in configuration:
            parts.append(f"{name}: {configuration.get('error')}")
            continue
        rows = []
        for variant, entry in configuration["variants"].items():
            if "latency_batch_1" not in entry:
                rows.append([variant, *["—"] * 7, entry.get("error") or entry.get("skipped")])
                continue
            latency, throughput = entry["latency_batch_1"], entry["throughput"]
            rows.append([variant, f"{entry['size_bytes'] / 2**20:.1f}", f"{entry['export_seconds']:.0f}",
                         f"{latency['median_ms']:.1f}", f"{latency['p90_ms']:.1f}",
                         f"{throughput['images_per_second']:.1f}",
                         f"{latency.get('threads', '—')} / {throughput.get('threads', '—')}",
                         f"{latency['cores_busy']:.1f} / {throughput['cores_busy']:.1f}", ""])
        parts.append(f"**{name}** (`{configuration['config_file']}`: backbone input {configuration['backbone_input']}, "
                     f"stem {configuration.get('stem', 'imagenet')}, width {configuration['width']}; "
                     f"calls {configuration['calls']})")
        parts.append(table(["variant", "MiB", "export s", "batch 1 median ms", "batch 1 p90 ms", "batch 64 images/s",
                            "threads (b1 / b64)", "cores busy (b1 / b64)", "note"], rows))
    return "\n\n".join(parts)


def data_pipeline_section(report):
    rows = [[name, result["what"], f"{result['images_per_second']:.0f}", report["ratio_to_naive"].get(name, 1.0)]
            for name, result in report["results"].items()]
    return "\n\n".join(["### Data pipeline (`benchmarks/data_pipeline.py`)", run_line(report),
                        table(["measurement", "what", "images/s", "ratio to naive"], rows)])


def video_section(report):
    rows = [[name, result["what"], f"{result['frames_per_second']:.1f}", f"{result['faces']} / {result['frames']}"]
            for name, result in report["results"].items()]
    video = report["video"]
    return "\n\n".join([
        "### Video (`benchmarks/video.py`)", run_line(report),
        f"A {video['size'][0]}x{video['size'][1]} clip of {video['frames']} frames at {video['fps']:g} frames/s with "
        "one face, through `predict.py`'s video path (decode, detection, tracking, classification, CSV).",
        table(["row", "what", "frames/s", "faces / frames"], rows)])


def photo_path_section(report):
    setup = report["setup"]
    return "\n\n".join([
        "### Photo path (`benchmarks/photo_path.py`)", run_line(report),
        f"{setup['faces']:,} real FER2013 {setup['split']} faces, one a 640x480 frame, {setup['face_sides'][0]}-"
        f"{setup['face_sides'][1]} pixels, on flat and photographed backgrounds, through "
        "`FaceExpressionRecognizer.recognize` (detection, crops, the shipped Keras model). A frame holds one face, so "
        "the time a frame is the photo path's latency per face, detection included. The whole-crop accuracy is the "
        "same model on the same 48x48 faces; a face not found counts as wrong in the photo-path accuracy, and the gap "
        "is the whole-crop accuracy less the photo path's, with its standard error over the faces. The FERPlus column "
        "scores both against FERPlus's majority labels (ten annotators a face) on the faces whose majority is a "
        "FER2013 class. A detection finds a face when its center lies inside the face's true frame and its side is at "
        "least a quarter of the frame's (`benchmarks/face_frames.py`). Report: "
        "[docs/results/photo_path.json](results/photo_path.json).",
        report["table"]])


# Report file stem -> section; inference_paper is the complete paper-size run (see inference.py).
SECTIONS = {"train_throughput": train_throughput_section, "inference": inference_section,
            "inference_paper": inference_section, "data_pipeline": data_pipeline_section,
            "video": video_section}
# Reports kept beside the documentation they back, not in benchmarks/results/.
DOCS_SECTIONS = {REPO_ROOT / "docs" / "results" / "photo_path.json": photo_path_section}


def markdown(results_dir=RESULTS_DIR):
    """The Markdown block of every report present, markers included."""
    parts = [START_MARKER, "<!-- generated by `python -m benchmarks.report --docs docs/benchmarks.md` -->"]
    for name, section in SECTIONS.items():
        path = Path(results_dir) / f"{name}.json"
        parts.append(section(json.loads(path.read_text())) if path.exists() else f"({path.name}: not run yet)")
    for path, section in DOCS_SECTIONS.items():
        parts.append(section(json.loads(path.read_text())) if path.exists() else f"({path.name}: not run yet)")
    return "\n\n".join(parts + [END_MARKER])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="directory of the JSON reports")
    parser.add_argument("--docs", type=Path, help="rewrite the tables between the markers in this file")
    args = parser.parse_args(argv)
    block = markdown(args.results)
    if args.docs:
        args.docs.write_text(replace_between_markers(args.docs.read_text(), block, START_MARKER, END_MARKER))
    else:
        print(block)


if __name__ == "__main__":
    main()
