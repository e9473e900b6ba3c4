"""What a video run writes: per-face records (CSV, JSON lines), the annotated video, the timeline plot.

Records are written and flushed frame by frame, so a run that is interrupted leaves valid files
holding every frame done. The CSV has one row per face per frame::

    frame,time_s,track,x,y,width,height,carried,label,Angry,Disgust,Fear,Happy,Sad,Surprise,Neutral

and the JSON lines file the same records as
``{"frame", "time_s", "track", "box", "carried", "label", "probabilities"}`` objects. `carried`
is 1 (true) where no detection found the face in that frame and its box is the track's
prediction (`keras_fer.tracking`), 0 where the detector found it.
"""

import csv
import json
import os

import cv2

from keras_fer import files
from keras_fer.drawing import annotate_frame

RECORD_COLUMNS = ("frame", "time_s", "track", "x", "y", "width", "height", "carried", "label")
# Container suffix -> codec that OpenCV's bundled FFmpeg writes without extra libraries.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
FALLBACK_FPS = 30.0


class VideoOutputError(Exception):
    """An output file cannot be written."""


def face_records(frame):
    """The JSON-ready records of a `VideoFrame`'s faces."""
    return [
        {"frame": frame.index, "time_s": round(frame.time_s, 4), "track": face.track, "box": list(face.box),
         "carried": face.carried, "label": face.label, "probabilities": {name: round(p, 6) for name, p in face.probabilities.items()}}
        for face in frame.faces
    ]


class RecordWriter:
    """Writes the faces of each frame to a CSV file and/or a JSON lines stream.

    Args:
        class_names: the model's classes, the CSV's last columns.
        csv_path: the CSV file, or None.
        jsonl: the JSON lines file, an open text stream (stdout), or None.
    """

    def __init__(self, class_names, csv_path=None, jsonl=None):
        self.class_names = tuple(class_names)
        self._opened = []
        self._csv_file = self._open(csv_path, newline="") if csv_path is not None else None
        self._jsonl = self._open(jsonl) if isinstance(jsonl, (str, os.PathLike)) else jsonl
        if self._csv_file is not None:
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(RECORD_COLUMNS + self.class_names)
            self._csv_file.flush()

    def write(self, frame):
        records = face_records(frame)
        if self._csv_file is not None and records:
            self._csv.writerows(
                [r["frame"], r["time_s"], r["track"], *r["box"], int(r["carried"]), r["label"],
                 *r["probabilities"].values()]
                for r in records
            )
            self._csv_file.flush()
        if self._jsonl is not None and records:
            self._jsonl.write("".join(json.dumps(record) + "\n" for record in records))
            self._jsonl.flush()

    def _open(self, path, **options):
        try:
            file = open(path, "w", **options)
        except OSError as error:
            raise VideoOutputError(f"{path}: cannot write the records: {error.strerror}.") from error
        self._opened.append(file)
        return file

    def close(self):
        for file in self._opened:
            file.close()


class AnnotatedVideoWriter:
    """Writes frames with each face's box, track, label and probability bars, at the source's rate.

    The container follows the suffix (`VIDEO_CODECS`); OpenCV writes no audio track.

    Args:
        path: the output video.
        fps: frames per second; the source's, or `FALLBACK_FPS` when it is unknown.
    """

    def __init__(self, path, fps):
        suffix = os.path.splitext(str(path))[1].lower()
        if suffix not in VIDEO_CODECS:
            raise VideoOutputError(f"{path}: unknown video container; use one of {', '.join(VIDEO_CODECS)}.")
        self.path, self.fps, self._codec = str(path), fps or FALLBACK_FPS, VIDEO_CODECS[suffix]
        self._writer = None
        self.frames_written = 0

    def write(self, frame):
        if self._writer is None:
            height, width = frame.image.shape[:2]
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self._codec), self.fps, (width, height))
            if not self._writer.isOpened():
                raise VideoOutputError(f"{self.path}: OpenCV cannot write this video ({self._codec} codec).")
        self._writer.write(annotate_frame(frame.image, frame.faces))
        self.frames_written += 1

    def close(self):
        if self._writer is not None:
            self._writer.release()


def read_records(csv_path):
    """{track: (times, {class name: probabilities})} from a CSV that `RecordWriter` wrote."""
    tracks = {}
    with open(csv_path, newline="") as file:
        reader = csv.reader(file)
        class_names = next(reader)[len(RECORD_COLUMNS):]
        for row in reader:
            times, series = tracks.setdefault(int(row[2]), ([], {name: [] for name in class_names}))
            times.append(float(row[1]))
            for name, value in zip(class_names, row[len(RECORD_COLUMNS):]):
                series[name].append(float(value))
    return tracks


def plot_timeline(csv_path, plot_path):
    """Draws each track's class probabilities against time (seconds) from the records CSV.

    Returns:
        the number of tracks drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracks = read_records(csv_path)
    rows = max(len(tracks), 1)
    figure, axes = plt.subplots(rows, 1, figsize=(9, 2.6 * rows), sharex=True, squeeze=False)
    for axis, (track, (times, series)) in zip(axes[:, 0], sorted(tracks.items())):
        for name, values in series.items():
            axis.plot(times, values, label=name, linewidth=1.2)
        axis.set_ylim(0, 1)
        axis.set_ylabel(f"track {track}\nprobability")
        axis.grid(alpha=0.3)
    if not tracks:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center", transform=axes[0, 0].transAxes)
    else:
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    with files.replaced_on_success(plot_path) as partial:
        figure.savefig(partial, dpi=120, format="png")
    plt.close(figure)
    return len(tracks)
