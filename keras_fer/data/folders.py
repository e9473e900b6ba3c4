"""Folders of images, one folder per expression, as a data source beside the FER2013 CSV.

Layouts (docs/data.md, "Image folders")::

    DIR/<class>/**/*.png            class folders: a seeded, stratified validation split is taken
    DIR/<split>/<class>/**/*.jpg    split folders (train, val, test, ...): the splits as given

Images of any size and channel count (gray, gray + alpha, RGB, RGBA, palette, 16 bits) become
the raw faces of the CSV readers, ``uint8 (N, 48, 48, 1)`` and ``int32`` labels, the way the
photo path (:mod:`keras_fer.faces`) turns a crop into a face: OpenCV's gray weights, in its
fixed-point arithmetic, alpha dropped, then area averaging down to 48x48 (bilinear where an image
is smaller). A FER2013 face written as PNG reads back with the same pixels.

Three stages:

1. :func:`scan_image_folder` lists the files, maps folder names to classes
   (:mod:`keras_fer.data.folder_layout`: synonyms, ``class_map``, label modes) and opens each image's header with Pillow (no pixel is
   decoded), so that files that are not images, or images TensorFlow cannot decode, are named
   and left out up front. It draws the validation split. No TensorFlow.
2. :func:`folder_dataset` decodes in ``tf.data`` (:mod:`keras_fer.data.image_decoding`), in parallel. A file
   whose header passed but whose body fails (a truncated JPEG) is dropped, named and counted at
   the end of the pass instead of stopping a long run; with ``detect_faces`` the largest face of
   each image is cropped as :mod:`keras_fer.faces` crops photos, and images without one are
   skipped and named likewise.
3. :func:`read_image_folder` runs the same pipeline into NumPy arrays (evaluation, JAX backend).

Example:
>>> import tempfile, pathlib
>>> import numpy as np
>>> from PIL import Image
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("happy", "Sad"):
...     (root / name).mkdir()
...     for i in range(10):
...         Image.fromarray(np.full((64, 64), 25 * i, np.uint8)).save(root / name / f"{i}.png")
>>> folder = scan_image_folder(root, validation_fraction=0.2, seed=0)
>>> folder.class_names, folder.count("Training"), folder.count("PublicTest")
(('Happy', 'Sad'), 16, 4)
>>> images, labels = read_image_folder(folder, "PublicTest")
>>> images.shape, images.dtype, labels.tolist()
((4, 48, 48, 1), dtype('uint8'), [0, 0, 1, 1])
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from keras_fer.data.csv_format import IMAGE_SHAPE, USAGES
from keras_fer.data.folder_layout import (
    IMAGE_EXTENSIONS,
    FolderFormatError,
    files_below,
    normalized_class_map,
    read_layout,
    relative_name,
    resolve_class_names,
)
from keras_fer.data.image_decoding import decode, detect_and_crop, orient, to_face, to_gray
from keras_fer.faces.images import MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)

# Pillow's names of the formats tf.io.decode_image decodes (MPO: a camera JPEG with a preview).
_DECODABLE_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB", "GIF", "WEBP"}
_HEADER_CHECK_THREADS = 8
_READ_BATCH = 256


@dataclasses.dataclass
class ImageFolder:
    """What :func:`scan_image_folder` found in a folder.

    Attributes:
        root: the folder, as given.
        class_names: the classes, indexed by label.
        splits: split name -> ``(paths, labels)``: a list of file paths and int32 labels, by
            class and then by path.
        unreadable: ``(path, reason)`` of the image files left out by the header check.
        has_split_folders: the folder holds split folders (``train``/``val``/``test``).
        labels: the label mode the classes come from (a mode name, or "explicit" for a list).
        folders: class folder (relative to ``root``, "/"-separated) -> class name, or None for
            a folder ``class_map`` maps to None (left out).
        ignored: file name ending -> number of files that are not read as images.
        skipped: path -> reason, for files dropped while reading: a body that fails to decode,
            or no face found (``detect_faces``); filled in as datasets are read.
    """

    root: str
    class_names: tuple
    splits: dict
    unreadable: list
    has_split_folders: bool
    labels: str = "folders"
    folders: dict = dataclasses.field(default_factory=dict)
    ignored: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=dict)
    orientations: dict = dataclasses.field(default_factory=dict, repr=False)  # path -> EXIF orientation != 1

    def count(self, split: str | Sequence[str] | None = None) -> int:
        """The number of readable images of a split (a name, a sequence, or None for all)."""
        return sum(len(self.splits[name][0]) for name in _split_names(self, split))


def is_image_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a directory, read as an image folder (a CSV is a file)."""
    return os.path.isdir(os.fspath(path))


def folder_class_names(
    root: str | os.PathLike, labels: str | Sequence[str] = "folders", class_map: Mapping | None = None
) -> tuple:
    """The class names a folder gets in a label mode, from its folder names alone (no file is opened).

    For ``labels="folders"`` these are the classes of the class folders that hold an image file
    name; a training run can build its model with them before the full scan.
    """
    layout = read_layout(os.fspath(root), normalized_class_map(class_map))
    return resolve_class_names(layout, labels)


def scan_image_folder(
    root: str | os.PathLike,
    labels: str | Sequence[str] = "folders",
    class_map: Mapping | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> ImageFolder:
    """Lists a folder's images, maps folders to classes, checks every header, draws the validation split.

    Args:
        root: ``DIR`` with class folders, or with split folders holding class folders.
        labels: ``"folders"``: the classes of the folders found, FERPlus-8 order first
            (Angry ... Neutral, Contempt), then new names of ``class_map`` alphabetically;
            ``"fer2013"``, ``"ferplus"`` or ``"ferplus8"``: that mode's classes and indices
            (:func:`keras_fer.data.class_names`); or a sequence of class names (a model's).
            A folder whose class is not among them is an error.
        class_map: folder name -> class name, for folders that :data:`CLASS_SYNONYMS` does not
            name (``{"1": "Surprise", "pain": "Pain"}``); folder names are matched without
            regard to case, and a class that is not a canonical name becomes a new class.
            None as a class leaves the folder out.
        validation_fraction: without split folders, or with split folders but no validation
            one (``train`` and ``test`` only), this fraction of each training class (at least one
            image of a class of two or more) becomes ``"PublicTest"``, the rest ``"Training"``;
            0 puts everything in ``"Training"``. Ignored when a validation folder exists.
        seed: seed of that split; the same seed and files give the same split.

    Returns:
        An :class:`ImageFolder`.

    Raises:
        FolderFormatError: no such directory, an unknown class or split folder (the message
            names it and lists the accepted names), a class outside ``labels``, or no image.
        ValueError: bad arguments.

    Example:
    >>> scan_image_folder("no/such/dir")
    Traceback (most recent call last):
    ...
    keras_fer.data.folder_layout.FolderFormatError: no/such/dir: no such directory
    """
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) \
            or not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be a number in [0, 1). Received: "
                         f"validation_fraction={validation_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer. Received: seed={seed!r}")
    root = os.fspath(root)
    layout = read_layout(root, normalized_class_map(class_map))
    names = resolve_class_names(layout, labels)
    index_of = {name: i for i, name in enumerate(names)}

    found = {split: [] for split in layout.splits}  # split -> [(path, label)]
    ignored: dict[str, int] = {}
    for split, folders in layout.splits.items():
        for folder, class_name in folders.items():
            if class_name is None:
                continue
            for path in files_below(os.path.join(layout.split_dirs[split], folder)):
                ending = os.path.splitext(path)[1].lower()
                if ending in IMAGE_EXTENSIONS:
                    found[split].append((path, index_of[class_name]))
                else:
                    key = ending or os.path.basename(path)
                    ignored[key] = ignored.get(key, 0) + 1
        if layout.loose_files[split]:
            key = "(outside a class folder)"
            ignored[key] = ignored.get(key, 0) + len(layout.loose_files[split])
    if not any(found.values()):
        raise FolderFormatError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")

    every_path = [path for entries in found.values() for path, _ in entries]
    checks = _check_headers(every_path)
    unreadable = [(path, reason) for path, (reason, _) in zip(every_path, checks) if reason is not None]
    orientations = {path: orientation for path, (reason, orientation) in zip(every_path, checks)
                    if reason is None and orientation != 1}
    if unreadable:
        logger.warning("%s: left out %d unreadable image files: %s", root, len(unreadable),
                       "; ".join(f"{path} ({reason})" for path, reason in unreadable[:10])
                       + (f"; and {len(unreadable) - 10} more" if len(unreadable) > 10 else ""))
    bad = {path for path, _ in unreadable}

    splits = {}
    for split, entries in found.items():
        entries = sorted(((path, label) for path, label in entries if path not in bad), key=lambda e: (e[1], e[0]))
        if entries:
            splits[split] = ([path for path, _ in entries], np.asarray([label for _, label in entries], np.int32))
    if not splits:
        raise FolderFormatError(f"{root}: none of its {len(every_path)} image files is readable "
                                f"(first: {unreadable[0][0]}: {unreadable[0][1]})")
    if "Training" in splits and "PublicTest" not in splits:
        # Class folders, or split folders without a validation one (RAF-DB's train/ and test/).
        splits = {**splits, **_validation_split(*splits["Training"], validation_fraction, seed)}
    splits = {split: splits[split] for split in USAGES if split in splits}
    return ImageFolder(
        root=root, class_names=names, splits=splits, unreadable=unreadable,
        has_split_folders=layout.has_split_folders,
        labels=labels if isinstance(labels, str) else "explicit",
        folders={relative_name(layout, split, folder): class_name
                 for split, folders in layout.splits.items() for folder, class_name in folders.items()},
        ignored=dict(sorted(ignored.items())), orientations=orientations,
    )  # fmt: skip


def parse_class_map(pairs: Sequence[str] | None) -> dict | None:
    """Command-line `FOLDER=CLASS` pairs as a ``class_map``; ``FOLDER=`` leaves a folder out.

    Raises:
        ValueError: a pair without ``=`` or without a folder name.

    Example:
    >>> parse_class_map(["pain=Pain", "1=Surprise", "other="])
    {'pain': 'Pain', '1': 'Surprise', 'other': None}
    """
    if pairs is None:
        return None
    class_map = {}
    for pair in pairs:
        folder, equals, name = pair.partition("=")
        if not equals or not folder.strip():
            raise ValueError(f"--class-map takes FOLDER=CLASS pairs (FOLDER= leaves a folder out). Received: {pair!r}")
        class_map[folder.strip()] = name.strip() or None
    return class_map


def count_image_folder(
    root: str | os.PathLike,
    labels: str | Sequence[str] = "folders",
    class_map: Mapping | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """Scans a folder (:func:`scan_image_folder`, same arguments) and reports it, JSON-ready.

    Returns:
        ``path``, ``layout`` ("split folders" or "class folders"), ``labels``, ``class_names``,
        ``folders`` (folder -> class, null when left out), ``images`` (readable), ``splits``
        (split -> ``images`` and ``classes``: class name -> count), ``unreadable`` (a list of
        ``{"path", "reason"}``), ``ignored`` (file name ending -> count).
    """
    folder = scan_image_folder(root, labels, class_map, validation_fraction, seed)
    return folder_report(folder)


def folder_report(folder: ImageFolder) -> dict:
    """The JSON-ready report of a scanned folder (see :func:`count_image_folder`)."""
    return {
        "path": folder.root,
        "layout": "split folders" if folder.has_split_folders else "class folders",
        "labels": folder.labels,
        "class_names": list(folder.class_names),
        "folders": folder.folders,
        "images": folder.count(),
        "splits": {
            split: {"images": len(paths),
                    "classes": dict(zip(folder.class_names, np.bincount(labels, minlength=len(folder.class_names))
                                        .tolist()))}
            for split, (paths, labels) in folder.splits.items()
        },
        "unreadable": [{"path": path, "reason": reason} for path, reason in folder.unreadable],
        "ignored": folder.ignored,
    }


def folder_dataset(
    folder: ImageFolder,
    split: str | Sequence[str] = "Training",
    batch_size: int = 64,
    shuffle: bool = False,
    seed: int | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    detect_faces: bool = False,
):
    """Batches of raw faces from a scanned image folder, decoded in ``tf.data``.

    Args:
        folder: an :class:`ImageFolder` from :func:`scan_image_folder`.
        split: a split name (``"Training"``, ``"PublicTest"``, ``"PrivateTest"``) or a sequence.
        batch_size: images per batch.
        shuffle: shuffle the images, differently each epoch: the file list is shuffled before
            decoding (no buffer of faces), or, with ``cache``, the cached faces (a buffer of all
            of them, 2.3 KB each).
        seed: shuffle seed.
        cache: keep the decoded faces in memory after the first pass.
        repeat: repeat forever (``folder.count(split)`` gives the steps per epoch).
        drop_remainder: drop the last, smaller batch.
        detect_faces: find the faces as the photo path does (``keras_fer.faces``' default
            detector, then its second detector where the first finds none), crop the largest as
            photos are cropped (FER2013 framing, eyes levelled), and skip images without one.

    Returns:
        A dataset of ``(uint8 (B, 48, 48, 1), int32 (B,))``. Its cardinality is unknown, since a
        file whose body fails to decode (or, with ``detect_faces``, that holds no face) is
        dropped; each such file is logged once per pass, by name, and kept in
        ``folder.skipped``.

    Raises:
        ValueError: bad arguments or a split the folder lacks.

    Example:
    >>> folder = scan_image_folder("faces/")  # doctest: +SKIP
    >>> train = folder_dataset(folder, "Training", batch_size=64, shuffle=True, seed=0, cache=True)  # doctest: +SKIP
    """
    import tensorflow as tf

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    faces = _faces(folder, split, detect_faces, shuffle_files=shuffle and not cache, seed=seed)
    if cache:
        faces = faces.cache()
        if shuffle:
            faces = faces.shuffle(folder.count(split), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        faces = faces.repeat()
    return faces.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def read_image_folder(
    folder: ImageFolder, split: str | Sequence[str] | None = None, detect_faces: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A folder's images as NumPy arrays, through the same decoding as :func:`folder_dataset`.

    Args:
        folder: an :class:`ImageFolder`.
        split: a split name, a sequence of them, or None for every split of the folder.
        detect_faces: see :func:`folder_dataset`.

    Returns:
        ``(images, labels)``: uint8 (N, 48, 48, 1) and int32 (N,), splits in the order
        Training, PublicTest, PrivateTest, each by class and then by path, less the files skipped
        (``folder.skipped``).
    """
    images, labels = [], []
    for batch_images, batch_labels in _faces(folder, split, detect_faces).batch(_READ_BATCH).as_numpy_iterator():
        images.append(batch_images)
        labels.append(batch_labels)
    if not images:
        return np.zeros((0, *IMAGE_SHAPE), np.uint8), np.zeros((0,), np.int32)
    return np.concatenate(images), np.concatenate(labels)


# --- header check and validation split ------------------------------------------------------


def _check_headers(paths: list[str]) -> list[tuple[str | None, int]]:
    """(reason or None, EXIF orientation) per file, from Pillow's header parse; threads hide the file latency."""
    if len(paths) < 64:
        return [_check_header(path) for path in paths]
    with concurrent.futures.ThreadPoolExecutor(_HEADER_CHECK_THREADS) as pool:
        return list(pool.map(_check_header, paths, chunksize=64))


def _check_header(path: str) -> tuple[str | None, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's size and EXIF warnings: the size is judged below
            with Image.open(path) as image:
                image_format, (width, height) = image.format, image.size
                # JPEG's EXIF block is parsed with the header; other formats would need a decode.
                orientation = image.getexif().get(0x0112, 1) if image_format in ("JPEG", "MPO") else 1
    except UnidentifiedImageError:
        return "not an image (Pillow cannot identify it)", 1
    except Image.DecompressionBombError:
        return f"larger than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels", 1
    except (OSError, ValueError, SyntaxError) as error:  # truncated or damaged headers raise all three
        return f"damaged header ({error})", 1
    if image_format not in _DECODABLE_FORMATS:
        return f"a {image_format} image; TensorFlow decodes PNG, JPEG, BMP, GIF and WebP", 1
    if width < 1 or height < 1:
        return f"empty image ({width}x{height})", 1
    if width * height > MAX_IMAGE_PIXELS:
        return f"{width}x{height} pixels, more than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels", 1
    return None, orientation if orientation in range(1, 9) else 1


def _validation_split(paths: list, labels: np.ndarray, fraction: float, seed: int) -> dict:
    """Stratified: ``fraction`` of each class (rounded, at least one of a class of two or more) to PublicTest."""
    rng = np.random.default_rng(seed)
    validation = np.zeros(len(paths), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = round(fraction * len(members))
        if fraction > 0 and len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)  # every class in both splits
        validation[rng.permutation(members)[:take]] = True
    splits = {"Training": ([p for p, v in zip(paths, validation) if not v], labels[~validation])}
    if validation.any():
        splits["PublicTest"] = ([p for p, v in zip(paths, validation) if v], labels[validation])
    return splits


def _split_names(folder: ImageFolder, split) -> tuple:
    if split is None:
        return tuple(folder.splits)
    names = (split,) if isinstance(split, str) else tuple(split)
    if not names or any(name not in USAGES for name in names):
        raise ValueError(f"split must be one or more of {', '.join(USAGES)}, or None for all. Received: split={split!r}")
    missing = [name for name in names if name not in folder.splits]
    if missing:
        raise ValueError(f"{folder.root} has no {', '.join(missing)} images (it has: {', '.join(folder.splits)})")
    return names


# --- decoding in tf.data --------------------------------------------------------------------


def _faces(folder: ImageFolder, split, detect_faces: bool, shuffle_files: bool = False, seed=None):
    """Unbatched ``(uint8 (48, 48, 1), int32 ())`` of the split's readable files, one pass.

    Each element carries its file's index until the end of the pass, where one Python call per
    256 elements marks it seen; a sentinel after the last element then names the files that
    ``ignore_errors`` dropped (a body that fails to decode) and those without a face.
    """
    import tensorflow as tf

    if not isinstance(detect_faces, bool):
        raise ValueError(f"detect_faces must be True or False. Received: detect_faces={detect_faces!r}")
    names = _split_names(folder, split)
    paths = [path for name in names for path in folder.splits[name][0]]
    labels = np.concatenate([folder.splits[name][1] for name in names]).astype(np.int32)
    orientations = np.asarray([folder.orientations.get(path, 1) for path in paths], np.int32)
    tracker = _PassTracker(folder, paths)

    files = tf.data.Dataset.from_tensor_slices((paths, labels, orientations, np.arange(len(paths), dtype=np.int64)))
    if shuffle_files:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, label, orientation, index):
        contents = tf.io.read_file(path)
        if detect_faces:
            face, found = detect_and_crop(orient(decode(contents, channels=3), orientation))
        else:
            face, found = to_face(orient(to_gray(contents), orientation)), tf.constant(True)
        return face, label, index, found

    faces = files.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    sentinel = tf.data.Dataset.from_tensors(
        (tf.zeros(IMAGE_SHAPE, tf.uint8), tf.constant(-1, tf.int32), tf.constant(-1, tf.int64), tf.constant(False)))

    def track(images, labels, indices, found):
        kept = tf.numpy_function(tracker.update, [indices, found], tf.bool, stateful=True)
        kept.set_shape(found.shape)
        return images, labels, kept

    # A plain map is sequential, so the sentinel's batch is marked after every other one.
    tracked = faces.concatenate(sentinel).batch(_READ_BATCH).map(track).unbatch()
    return tracked.filter(_is_kept).map(_drop_kept_flag)


def _is_kept(image, label, kept):
    return kept


def _drop_kept_flag(image, label, kept):
    return image, label



class _PassTracker:
    """Notes the files each pass delivers; at its end names those dropped and records them in ``folder.skipped``."""

    def __init__(self, folder: ImageFolder, paths: list[str]):
        self.folder = folder
        self.paths = paths
        self.seen = np.zeros(len(paths), bool)
        self.no_face: list[int] = []
        self.lock = threading.Lock()

    def update(self, indices: np.ndarray, found: np.ndarray) -> np.ndarray:
        with self.lock:
            real = indices >= 0
            self.seen[indices[real]] = True
            self.no_face.extend(indices[real & ~found].tolist())
            if not real.all():  # the sentinel: the pass is over
                self._report()
        return found & real

    def _report(self) -> None:
        failed = np.flatnonzero(~self.seen).tolist()
        problems = [(self.paths[i], "cannot be decoded (damaged or truncated)") for i in failed]
        problems += [(self.paths[i], "no face found") for i in sorted(self.no_face)]
        new = [(path, reason) for path, reason in problems if self.folder.skipped.get(path) != reason]
        self.folder.skipped.update(problems)
        if new:
            logger.warning("%s: skipped %d images while reading (%d cannot be decoded, %d without a face): %s",
                           self.folder.root, len(problems), len(failed), len(self.no_face),
                           "; ".join(f"{path} ({reason})" for path, reason in new[:10])
                           + (f"; and {len(new) - 10} more" if len(new) > 10 else ""))
        self.seen[:] = False
        self.no_face = []
