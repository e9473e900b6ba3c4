"""`python predict.py`: labels the faces in photos and videos with the shipped model or a trained one.

Every face the detector finds (MediaPipe's BlazeFace by default; `--detector mtcnn` or
`cascade`; in a photo where it finds none, MTCNN looks again, `--second-detector`) is cropped as
FER2013 frames its faces, rotated so that its eyes are level, converted to a 48x48 gray (or RGB,
as the model wants) face and classified (`keras_fer.faces`). Photos print one JSON line per face. Videos,
cameras and streams print (or write with `--csv`, `--jsonl`) one record per face per frame,
with a track id that follows the face, and can write an annotated video and a plot over time
(`keras_fer.video`, docs/video.md). With no `--model`, photos use the model shipped in the
package (preset "fer2013") and videos the same model converted once to a dynamic-range TFLite
file (cached; `keras_fer.pretrained.tflite_file`). An input that cannot be read, holds no face,
or a model that cannot be loaded gives a message naming it, and the other inputs are still
processed; the exit status is 1 if any input failed.

    python predict.py photo.jpg other.png
    python predict.py --model runs/quickstart/best.keras --annotate out/ photo.jpg
    python predict.py clip.mp4 --video-out annotated.mp4 --csv emotions.csv --plot emotions.png
    python predict.py --camera 0 --video-out session.mp4
"""

import argparse
import json
import sys

from keras_fer import pretrained
from keras_fer.classifiers import KerasClassifier, ModelError
from keras_fer.drawing import annotate, mask_overlays, write_image
from keras_fer.faces import DEFAULT_DETECTOR, DEFAULT_SECOND_DETECTOR, DETECTORS, ImageError, read_image
from keras_fer.recognizer import DEFAULT_MIN_FACE_SIZE, FaceExpressionRecognizer
from keras_fer.video import VIDEO_SUFFIXES, VideoError, analyze_video, is_video, open_video
from keras_fer.video_outputs import AnnotatedVideoWriter, RecordWriter, VideoOutputError, plot_timeline

DEFAULT_MODEL = "fer2013"
# Video defaults: measured by `python -m benchmarks.video` (docs/video.md).
DEFAULT_DETECT_EVERY = 4
DEFAULT_DETECT_SCALE = 1.0
VIDEO_OUTPUTS = ("video_out", "csv", "jsonl", "plot")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Find the faces in photos, videos or a camera and print one JSON line per face (per frame for "
                    "videos): box, label, probabilities; videos also give each face a track id and time.",
    )
    parser.add_argument(
        "--model",
        help=f"a shipped preset name ({', '.join(pretrained.available())}), one network of an ensemble preset "
             "(ferplus:member1, half the cost of ferplus), a .keras file, a SavedModel directory or "
             f"a .tflite file (default: the preset "
             f"{DEFAULT_MODEL!r} for photos, and for videos the same model as a dynamic-range TFLite file, "
             "converted once and cached)",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="photos (any format OpenCV reads), videos (" + ", ".join(
                            suffix.lstrip(".") for suffix in VIDEO_SUFFIXES) + ") or stream URLs")
    parser.add_argument("--camera", type=int, metavar="INDEX", help="read this camera (0: the first) until Ctrl-C")
    faces = parser.add_argument_group("faces")
    faces.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                       help=f"face detector (default {DEFAULT_DETECTOR}: MediaPipe's BlazeFace; mtcnn: MTCNN; cascade: "
                            "OpenCV's Haar cascade, no landmarks); docs/deploy.md compares them")
    faces.add_argument("--second-detector", choices=(*DETECTORS, "none"), default=DEFAULT_SECOND_DETECTOR,
                       help=f"photos: the detector that looks again where --detector finds no face (default "
                            f"{DEFAULT_SECOND_DETECTOR}: it found a quarter of the faces in frames where BlazeFace "
                            "found nothing; docs/deploy.md); none: --detector alone. Videos run --detector alone, "
                            "for speed")
    faces.add_argument("--min-face-size", type=int, default=DEFAULT_MIN_FACE_SIZE, metavar="PIXELS",
                       help=f"the smallest face side to look for (default {DEFAULT_MIN_FACE_SIZE}); smaller is slower")
    faces.add_argument("--no-align", dest="align", action="store_false",
                       help="crop faces by their boxes only, without levelling the eyes by the landmarks")
    faces.add_argument("--single-view", dest="framing_views", action="store_false",
                       help="photos: classify each face's one crop, not the average over its framing views (the "
                            "crop, the box framing, zoomed out and in: docs/deploy.md, \"Framing views\"); videos "
                            "always classify one crop, for speed")
    photos = parser.add_argument_group("photos")
    photos.add_argument("--annotate", metavar="DIR", help="write each photo with boxes and labels drawn to DIR")
    photos.add_argument(
        "--masks", metavar="DIR",
        help="write, for the largest face of each photo, the four stage mask gates over the face (.keras and presets; "
             "one row per network of an ensemble)",
    )
    photos.add_argument(
        "--whole-image", action="store_true", help="the images are face crops already: classify them whole"
    )
    video = parser.add_argument_group("videos and cameras (one per run when writing files)")
    video.add_argument("--video-out", metavar="FILE", help="write the annotated video (.mp4 or .avi) at the source's "
                                                           "frame rate")
    video.add_argument("--csv", metavar="FILE", help="write one row per face per frame to FILE instead of stdout")
    video.add_argument("--jsonl", metavar="FILE", help="write the same records as JSON lines to FILE instead of stdout")
    video.add_argument("--plot", metavar="FILE", help="plot each track's probabilities over time (seconds) to a PNG "
                                                      "(needs --csv)")
    video.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY, metavar="N",
                       help="run the face detector on every N-th frame; tracks are carried along at their velocity "
                            f"between (default {DEFAULT_DETECT_EVERY})")
    video.add_argument("--detect-scale", type=float, default=DEFAULT_DETECT_SCALE, metavar="S",
                       help=f"detect faces on frames resized by S (default {DEFAULT_DETECT_SCALE}); less work, and "
                            "faces near --min-face-size may be missed")
    video.add_argument("--batch-frames", type=int, default=8, metavar="N",
                       help="classify the faces of N frames in one call (default 8)")
    video.add_argument("--smooth", type=int, default=1, metavar="N",
                       help="average each track's probabilities over its last N frames (default 1: off)")
    parser.add_argument("--threads", type=int, help="threads of a .tflite model (default: every core)")
    parser.add_argument("--class-names", help="comma-separated class names, overriding those of the model")
    args = parser.parse_args(argv)
    args.sources = [*args.inputs, *([args.camera] if args.camera is not None else [])]
    args.videos = [source for source in args.sources if is_video(source)]
    if not args.sources:
        parser.error("give photos or videos, or --camera INDEX")
    writes_files = [f"--{name.replace('_', '-')}" for name in VIDEO_OUTPUTS if getattr(args, name)]
    if writes_files and len(args.videos) != 1:
        parser.error(f"{', '.join(writes_files)} need exactly one video or camera; {len(args.videos)} given")
    if args.plot and not args.csv:
        parser.error("--plot draws from the records: give --csv FILE too")
    if not 0.0 < args.detect_scale <= 1.0:
        parser.error(f"--detect-scale must be in (0, 1], not {args.detect_scale}")
    for name in ("detect_every", "batch_frames", "smooth", "threads", "min_face_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more, not {value}")
    return args


def searched(recognizer, second_detector=None):
    """What a search that found no face looked for, and the options that change it."""
    detectors = " and ".join(detector.name for detector in (recognizer.detector, second_detector)
                          if detector is not None)
    return f"{detectors}, faces of {recognizer.min_face_size} pixels or more; try --detector or --min-face-size"


def predict_file(recognizer, path, args):
    """Classifies one photo, prints its JSON lines and writes the requested pictures."""
    image = read_image(path)
    faces = recognizer.recognize(image, whole_image=args.whole_image)
    if not faces:
        raise ImageError(f"{path}: no face found ({searched(recognizer, recognizer.second_detector)}, or "
                         "--whole-image if the photos are face crops already).")
    results = [{"file": path, **face.to_dict()} for face in faces]
    for result in results:
        print(json.dumps(result), flush=True)
    if args.annotate:
        write_image(args.annotate, path, "_annotated", annotate(image, results))
    if args.masks:
        face = faces[0].face
        write_image(args.masks, path, "_masks", mask_overlays(face, recognizer.classifier.stage_gates(face)))


def predict_video(recognizer, source, args):
    """Tracks and classifies the faces of one video or camera, writing the requested outputs.

    Returns:
        the number of frames processed. Ctrl-C ends the run early; the outputs then hold the
        frames done, and KeyboardInterrupt propagates.
    """
    video = open_video(source)
    records = RecordWriter(recognizer.class_names, args.csv, args.jsonl or (None if args.csv else sys.stdout))
    annotated = AnnotatedVideoWriter(args.video_out, video.fps) if args.video_out else None
    progress = progress_bar(video)
    faces_found = 0
    try:
        frames = analyze_video(recognizer, video, detect_every=args.detect_every, batch_frames=args.batch_frames,
                               smoothing=args.smooth, detect_scale=args.detect_scale)
        for frame in frames:
            records.write(frame)
            faces_found += len(frame.faces)
            if annotated:
                annotated.write(frame)
            progress.update()
    finally:
        progress.close()
        records.close()
        if annotated:
            annotated.close()
        video.close()
    if video.ended_early:
        print(f"warning: {video.name}: the video ended after {video.frames_read} of the {video.frame_count} frames "
              "its header announces (truncated or damaged); the readable frames were processed.", file=sys.stderr)
    if not faces_found and video.frames_read:
        # The records hold only their header; say why rather than leave an empty file unexplained.
        print(f"warning: {video.name}: no face found in its {video.frames_read} frames ({searched(recognizer)}).",
              file=sys.stderr)
    if args.plot:
        plot_timeline(args.csv, args.plot)
    return video.frames_read


def progress_bar(video):
    """A tqdm bar of frames, frames/s and ETA on a terminal's stderr; silent otherwise."""
    from tqdm import tqdm

    return tqdm(total=video.frame_count, desc=video.name, unit="frame", disable=not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True)


def default_model(args):
    """The --model to use: the given one, else the preset, as a cached TFLite file when there are videos."""
    if args.model is not None:
        return args.model
    if args.videos:
        return str(pretrained.tflite_file(DEFAULT_MODEL, "dynamic"))
    return DEFAULT_MODEL


def main(argv=None):
    """Runs predict.py; returns the exit status (0 if every input was processed, 1 if any failed, 130 on Ctrl-C)."""
    args = parse_args(argv)
    class_names = args.class_names.split(",") if args.class_names else None
    try:
        recognizer = FaceExpressionRecognizer(default_model(args), class_names, args.min_face_size, args.threads,
                                              detector=args.detector, align=args.align,
                                              framing_views=args.framing_views,
                                              second_detector=None if args.second_detector == "none"
                                              else args.second_detector)
        if args.masks and not isinstance(recognizer.classifier, KerasClassifier):
            raise ModelError(f"{args.model}: --masks needs a .keras model or a preset (the stage masks are not "
                             "exported).")
        if args.masks:
            recognizer.classifier.mask_networks()  # a model without masks is refused before any photo
    except (ModelError, pretrained.PresetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    failed = 0
    for source in args.sources:
        try:
            if is_video(source):
                predict_video(recognizer, source, args)
            else:
                predict_file(recognizer, source, args)
        except (ImageError, ModelError, VideoError, VideoOutputError) as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
        except KeyboardInterrupt:
            print(f"interrupted: {source} stopped; the outputs hold the frames done.", file=sys.stderr)
            return 130
    if failed:
        print(f"{failed} of {len(args.sources)} inputs failed.", file=sys.stderr)
    return 1 if failed else 0
