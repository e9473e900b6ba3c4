"""Frames per second of `predict.py` on a 640x480 video with one face, end to end.

The clip is made here: scikit-image's astronaut (a real photograph) sliding across a 640x480
gray canvas, 30 frames per second, written as MJPG AVI with OpenCV. Each row runs the whole
video path of `predict.py` in this process (`keras_fer.predict.predict_video`: decoding,
face detection every N-th frame, tracking, aligned crops, batched classification, the CSV
records) and reports frames / wall seconds, after one untimed pass that loads and warms the
model. The default row uses `predict.py`'s defaults: the shipped model as a dynamic-range TFLite
file (every core), the BlazeFace detector every `DEFAULT_DETECT_EVERY`-th frame at
`DEFAULT_DETECT_SCALE`, 8 frames a batch.

    python -m benchmarks.video            # about 3 minutes on 2 cores
    python -m benchmarks.video --quick    # a 2-second clip, fewer rows
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import RESULTS_DIR, argument_parser, report_header, write_report  # noqa: E402

SIZE = (640, 480)
FPS = 30.0
# At this size the Haar cascade finds her face (about 75 pixels) in every frame.
PHOTO_SIDE = 400


def write_moving_face_clip(path, frames, fps=FPS, step=2):
    """Writes the astronaut sliding `step` pixels a frame back and forth across a 640x480 canvas; returns `path`."""
    import skimage.data

    photo = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (PHOTO_SIDE, PHOTO_SIDE),
                       interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    for index in range(frames):
        canvas = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        span = SIZE[0] - PHOTO_SIDE
        phase = (step * index) % (2 * span)
        left = phase if phase <= span else 2 * span - phase  # back and forth, no jump
        canvas[40 : 40 + PHOTO_SIDE, left : left + PHOTO_SIDE] = photo
        writer.write(canvas)
    writer.release()
    return str(path)


def measure(clip, model, detector, detect_every, detect_scale, video_out, directory):
    """(frames per second, frames, faces) of one predict.py video run, after a warm-up run."""
    from keras_fer.predict import parse_args, predict_video
    from keras_fer.recognizer import FaceExpressionRecognizer

    arguments = [clip, "--csv", str(directory / "records.csv"), "--detect-every", str(detect_every),
                 "--detect-scale", str(detect_scale), "--detector", detector]
    if video_out:
        arguments += ["--video-out", str(directory / "annotated.avi")]
    args = parse_args(arguments)
    recognizer = FaceExpressionRecognizer(model, min_face_size=args.min_face_size, detector=detector)
    predict_video(recognizer, clip, args)  # warm-up: graph tracing, interpreter allocation, caches
    start = time.perf_counter()
    frames = predict_video(recognizer, clip, args)
    seconds = time.perf_counter() - start
    with open(directory / "records.csv") as file:
        faces = sum(1 for _ in file) - 1
    return frames / seconds, frames, faces


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="a 2-second clip and two rows")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    output = args.output or RESULTS_DIR / ("video_quick.json" if args.quick else "video.json")

    from keras_fer import pretrained
    from keras_fer.predict import DEFAULT_DETECT_EVERY as EVERY
    from keras_fer.predict import DEFAULT_DETECT_SCALE as SCALE

    tflite = str(pretrained.tflite_file("fer2013", "dynamic"))
    rows = [
        ("default", f"predict.py defaults: preset as dynamic-range TFLite, BlazeFace every {EVERY} frames at scale "
                    f"{SCALE}, batch 8", tflite, "blazeface", EVERY, SCALE, False),
        ("detect_every_1", "the same, detection on every frame", tflite, "blazeface", 1, SCALE, False),
        ("detect_every_2", "the same, detection every 2nd frame", tflite, "blazeface", 2, SCALE, False),
        ("detect_every_5", "the same, detection every 5th frame", tflite, "blazeface", 5, SCALE, False),
        ("mtcnn", "defaults with --detector mtcnn", tflite, "mtcnn", EVERY, SCALE, False),
        ("cascade", "defaults with --detector cascade (the earlier default detector)", tflite, "cascade", EVERY,
         SCALE, False),
        ("default_with_video_out", "defaults plus the annotated video (--video-out, MJPG AVI)", tflite, "blazeface",
         EVERY, SCALE, True),
        ("keras_preset", "defaults with the preset as a Keras model (--model fer2013)", "fer2013", "blazeface", EVERY,
         SCALE, False),
    ]
    if args.quick:
        rows = rows[:1] + rows[-1:]
    import keras

    import keras_fer

    report = report_header(["keras_fer", "benchmarks/video.py"], cv2, np, keras)
    report.update({"keras_fer": keras_fer.__version__, "video": {"size": list(SIZE), "fps": FPS}, "results": {}})
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        seconds = 2 if args.quick else 10
        clip = write_moving_face_clip(directory / "clip.avi", int(seconds * FPS))
        report["video"]["frames"] = int(seconds * FPS)
        for name, what, model, detector, detect_every, detect_scale, video_out in rows:
            fps, frames, faces = measure(clip, model, detector, detect_every, detect_scale, video_out, directory)
            report["results"][name] = {"what": what, "frames_per_second": round(fps, 1), "frames": frames,
                                       "faces": faces, "detector": detector, "detect_every": detect_every,
                                       "detect_scale": detect_scale, "batch_frames": 8}
            print(f"{name}: {fps:.1f} frames/s ({faces} faces in {frames} frames)", flush=True)
    write_report(report, output)


if __name__ == "__main__":
    main()
