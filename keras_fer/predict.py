"""`python predict.py`: labels the faces in photos with the shipped model or a trained one.

Every face that OpenCV's bundled Haar cascade finds is cropped, converted to a 48x48 gray
(or RGB, as the model wants) face and classified; one JSON line is printed per face. With no
`--model`, the model shipped in the package (`keras_fer.pretrained`, preset "fer2013") is
used. A file that cannot be read, holds no face, or a model that cannot be loaded gives a
message naming the file, and the other files are still processed; the exit status is 1 if
any file failed.

    python predict.py photo.jpg other.png
    python predict.py --model runs/quickstart/best.keras --annotate out/ photo.jpg
    python predict.py --model runs/quickstart/export/keras_fer --masks out/ photo.jpg
"""

import argparse
import json
import sys

from keras_fer.classifiers import KerasClassifier, ModelError
from keras_fer.drawing import annotate, mask_overlays, write_image
from keras_fer.faces import ImageError, read_image
from keras_fer.recognizer import FaceExpressionRecognizer

DEFAULT_MODEL = "fer2013"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Find the faces in photos and print one JSON line per face: file, box, label, probabilities.",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"a shipped preset name (default {DEFAULT_MODEL!r}: the FER2013 model in the package), "
             "a .keras file, a SavedModel directory or a .tflite file",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photos (any format OpenCV reads)")
    parser.add_argument("--annotate", metavar="DIR", help="write each photo with boxes and labels drawn to DIR")
    parser.add_argument(
        "--masks", metavar="DIR",
        help="write, for the largest face of each photo, the four stage mask gates over the face (.keras and presets)",
    )
    parser.add_argument(
        "--whole-image", action="store_true", help="the images are face crops already: classify them whole"
    )
    parser.add_argument("--class-names", help="comma-separated class names, overriding those of the model")
    return parser.parse_args(argv)


def predict_file(recognizer, path, args):
    """Classifies one photo, prints its JSON lines and writes the requested pictures."""
    image = read_image(path)
    faces = recognizer.recognize(image, whole_image=args.whole_image)
    if not faces:
        raise ImageError(f"{path}: no face found (OpenCV Haar cascade, frontal faces of "
                         f"{recognizer.min_face_size} pixels or more).")
    results = [{"file": path, **face.to_dict()} for face in faces]
    for result in results:
        print(json.dumps(result), flush=True)
    if args.annotate:
        write_image(args.annotate, path, "_annotated", annotate(image, results))
    if args.masks:
        face = faces[0].face
        write_image(args.masks, path, "_masks", mask_overlays(face, recognizer.classifier.stage_gates(face)))


def main(argv=None):
    """Runs predict.py; returns the exit status (0 if every file was processed, else 1)."""
    args = parse_args(argv)
    class_names = args.class_names.split(",") if args.class_names else None
    try:
        recognizer = FaceExpressionRecognizer(args.model, class_names)
        if args.masks and not isinstance(recognizer.classifier, KerasClassifier):
            raise ModelError(f"{args.model}: --masks needs a .keras model or a preset (the stage masks are not "
                             "exported).")
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    failed = 0
    for path in args.images:
        try:
            predict_file(recognizer, path, args)
        except (ImageError, ModelError) as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.images)} files failed.", file=sys.stderr)
    return 1 if failed else 0
