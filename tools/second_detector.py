"""What a second detector adds where the first finds no face, measured on Training faces in frames.

FER2013 Training faces are placed in 640x480 frames (`benchmarks.face_frames`), and both
detectors run on every frame. The report counts the faces the first detector misses, the frames
where it finds nothing at all, and how many of the missed faces the second finds: in those empty
frames (what `keras_fer.faces.detect_with_fallback`, the photo path's default, adds) and in all
frames (what running both on every photo could add at most). Photos without a face are where
the second detector always runs, so it also runs on frames of the same backgrounds with no face
placed, and the report gives the false faces a frame of each. Training faces only: PublicTest
stays for the benchmark (`benchmarks.photo_path`).

    python tools/second_detector.py                 # 2,000 faces and 260 empty frames, about 5 minutes
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # benchmarks/ is not part of the installed package

import numpy as np  # noqa: E402

from benchmarks.common import DATA_FILE, report_header, write_report  # noqa: E402
from benchmarks.face_frames import BACKGROUNDS, background, best_match, placed_faces  # noqa: E402

OUTPUT = REPO_ROOT / "docs" / "results" / "second_detector.json"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/second_detector.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="FER2013 CSV (default: the shared file)")
    parser.add_argument("--faces", type=int, default=2000, help="Training faces, one a frame (default 2000)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--first", default="blazeface")
    parser.add_argument("--second", default="mtcnn")
    parser.add_argument("--empty-frames", type=int, default=260,
                        help="frames without a face, cycling through the backgrounds (default 260)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from keras_fer.data import read_fer2013
    from keras_fer.faces import make_detector
    from keras_fer.recognizer import DEFAULT_MIN_FACE_SIZE

    images, labels = read_fer2013(args.data, usage="Training")
    chosen = np.random.default_rng(args.seed).choice(len(images), args.faces, replace=False)
    first, second = (make_detector(name, DEFAULT_MIN_FACE_SIZE) for name in (args.first, args.second))
    missed, empty, found_in_empty, found_in_all = [], 0, 0, 0
    for frame in tqdm(placed_faces(images[chosen], labels[chosen], seed=args.seed), total=args.faces,
                      desc="frames", dynamic_ncols=True):
        faces = first.detect(frame.image)
        if best_match(faces, frame.box) is not None:
            continue
        missed.append(int(chosen[frame.index]))
        rescued = best_match(second.detect(frame.image), frame.box) is not None
        found_in_all += rescued
        if not faces:
            empty += 1
            found_in_empty += rescued
    rng = np.random.default_rng(args.seed)
    false_first = false_second = 0
    for index in tqdm(range(args.empty_frames), desc="frames without a face", dynamic_ncols=True):
        image = background(BACKGROUNDS[index % len(BACKGROUNDS)], rng)
        faces = first.detect(image)
        false_first += len(faces)
        false_second += 0 if faces else len(second.detect(image))
    report = report_header(["keras_fer/faces", "tools/second_detector.py", "benchmarks/face_frames.py"])
    report.update({
        "split": "Training", "faces": args.faces, "seed": args.seed, "first": args.first, "second": args.second,
        "min_face_size": DEFAULT_MIN_FACE_SIZE,
        "missed_by_first": len(missed),
        "frames_where_first_found_nothing": empty,
        "found_by_second_where_first_found_nothing": found_in_empty,
        "found_by_second_among_all_missed": found_in_all,
        "frames_without_a_face": args.empty_frames,
        "false_faces_per_frame_without_a_face": {
            "first": round(false_first / max(args.empty_frames, 1), 4),
            "first then second": round((false_first + false_second) / max(args.empty_frames, 1), 4)},
        "missed_rows": missed,
    })
    print({key: value for key, value in report.items() if key.startswith(("missed_by", "frames_", "found_", "false_"))})
    write_report(report, args.output)


if __name__ == "__main__":
    main()
