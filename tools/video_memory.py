"""Checks that the video loop's memory stays flat: resident memory at frames 300 to 3,000 of a long clip.

The clip is the benchmark's (`benchmarks.video.write_moving_face_clip`, 640x480 at 30 frames/s,
one face), 100 seconds long; it runs through `keras_fer.video.analyze_video` with the CSV records
and the annotated video written, as `predict.py` does with its defaults.

    python tools/video_memory.py
"""

import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.video import write_moving_face_clip  # noqa: E402
from keras_fer import pretrained  # noqa: E402
from keras_fer.predict import DEFAULT_DETECT_EVERY, DEFAULT_DETECT_SCALE  # noqa: E402
from keras_fer.recognizer import FaceExpressionRecognizer  # noqa: E402
from keras_fer.video import analyze_video  # noqa: E402
from keras_fer.video_outputs import AnnotatedVideoWriter, RecordWriter  # noqa: E402

MARKS = (300, 1000, 2000, 3000)


def resident_mib():
    """This process's resident set size, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main():
    with tempfile.TemporaryDirectory() as directory:
        clip = write_moving_face_clip(f"{directory}/long.avi", MARKS[-1])
        recognizer = FaceExpressionRecognizer(str(pretrained.tflite_file("fer2013", "dynamic")))
        records = RecordWriter(recognizer.class_names, f"{directory}/records.csv")
        video = AnnotatedVideoWriter(f"{directory}/annotated.avi", 30.0)
        resident = {}
        frames = analyze_video(recognizer, clip, detect_every=DEFAULT_DETECT_EVERY, detect_scale=DEFAULT_DETECT_SCALE)
        for frame in frames:
            records.write(frame)
            video.write(frame)
            if frame.index + 1 in MARKS:
                resident[frame.index + 1] = round(resident_mib(), 1)
        records.close()
        video.close()
    print("resident MiB after frames:", resident)


if __name__ == "__main__":
    main()
