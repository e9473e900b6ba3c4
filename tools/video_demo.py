"""Makes the pictures of docs/video.md: a frame of an annotated video and the expression plot over time.

The video is the benchmark's clip (`benchmarks.video.write_moving_face_clip`: scikit-image's
astronaut sliding across a 640x480 canvas at 30 frames per second), run through `predict.py`
with its defaults as a user would:

    python predict.py clip.avi --video-out annotated.mp4 --csv emotions.csv --plot emotions.png

    python tools/video_demo.py --output-dir docs/video
"""

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402

from benchmarks.video import write_moving_face_clip  # noqa: E402
from keras_fer.predict import main as predict  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "docs" / "video")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the clip")
    parser.add_argument("--frame", type=int, default=45, help="index of the annotated frame to save")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        clip = write_moving_face_clip(Path(temporary) / "clip.avi", int(args.seconds * 30))
        annotated = str(Path(temporary) / "annotated.mp4")
        status = predict([clip, "--video-out", annotated, "--csv", str(args.output_dir / "emotions.csv"),
                          "--plot", str(args.output_dir / "emotions.png")])
        if status != 0:
            sys.exit(f"predict.py failed with status {status}")
        video = cv2.VideoCapture(annotated)
        video.set(cv2.CAP_PROP_POS_FRAMES, args.frame)
        ok, frame = video.read()
        if not ok:
            sys.exit(f"the annotated video has no frame {args.frame}")
        cv2.imwrite(str(args.output_dir / "annotated_frame.png"), frame)
    print(f"wrote {args.output_dir}/annotated_frame.png, emotions.png and emotions.csv")


if __name__ == "__main__":
    main()
