"""Image folders' names: folder names to classes and splits, the layout of a folder, label modes.

The synonym lists (:data:`CLASS_SYNONYMS`, :data:`SPLIT_SYNONYMS`), a user's ``class_map``
and the label mode decide which class each folder holds; :func:`read_layout` finds the split
and class folders and refuses what it cannot place, naming the folder and the accepted names.
Only folder names are read here: no image is opened.

Example:
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("train/happiness", "train/pain", "val/Happy", "val/pain"):
...     (root / name).mkdir(parents=True)
>>> layout = read_layout(str(root), normalized_class_map({"pain": "Pain"}))
>>> layout.has_split_folders, layout.splits
(True, {'Training': {'happiness': 'Happy', 'pain': 'Pain'}, 'PublicTest': {'Happy': 'Happy', 'pain': 'Pain'}})
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from keras_fer.data.ferplus import FERPLUS8_CLASS_NAMES
from keras_fer.data.selection import LABEL_MODES
from keras_fer.data.selection import class_names as label_mode_class_names

CANONICAL_CLASS_NAMES = FERPLUS8_CLASS_NAMES
# Folder names (compared in lower case) -> class names. The names used by RAF-DB, AffectNet,
# CK+, ExpW, JAFFE, KDEF and the Kaggle FER2013 image folders; numbered folders differ between
# data sets (RAF-DB's 1 is Surprise, AffectNet's 1 is Happy) and need a class_map.
CLASS_SYNONYMS = {
    "angry": "Angry", "anger": "Angry", "an": "Angry",
    "disgust": "Disgust", "disgusted": "Disgust", "di": "Disgust",
    "fear": "Fear", "fearful": "Fear", "scared": "Fear", "afraid": "Fear", "fe": "Fear",
    "happy": "Happy", "happiness": "Happy", "joy": "Happy", "ha": "Happy",
    "sad": "Sad", "sadness": "Sad", "sa": "Sad",
    "surprise": "Surprise", "surprised": "Surprise", "su": "Surprise",
    "neutral": "Neutral", "calm": "Neutral", "ne": "Neutral",
    "contempt": "Contempt", "co": "Contempt",
}  # fmt: skip
# Split folder names (compared in lower case) -> this project's split names.
SPLIT_SYNONYMS = {
    "train": "Training", "training": "Training",
    "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest", "publictest": "PublicTest",
    "test": "PrivateTest", "privatetest": "PrivateTest",
}  # fmt: skip
# The file name endings read as images; tf.io.decode_image decodes these formats (by content,
# so a PNG named .jpg still reads). Other files (.txt, .tiff, .DS_Store) are counted as ignored.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif", ".webp")
LABEL_MODES_WITH_FOLDERS = ("folders", *LABEL_MODES)


class FolderFormatError(ValueError):
    """A folder's layout cannot be read: an unknown class or split folder, no images, a clash."""


@dataclasses.dataclass
class FolderLayout:
    """The split and class folders :func:`read_layout` found; the keys are folder names as found."""

    root: str
    has_split_folders: bool
    split_dirs: dict  # split -> directory
    split_folder_names: dict  # split -> the folder's own name
    splits: dict  # split -> {class folder name: class name or None}
    loose_files: dict  # split -> files lying beside the class folders


def read_layout(root: str, class_map: dict) -> FolderLayout:
    """The split and class folders of ``root``, each class folder mapped to its class name."""
    if not os.path.isdir(root):
        raise FolderFormatError(f"{root}: no such directory" if not os.path.exists(root) else
                                f"{root}: not a directory")
    children = _subfolders(root)
    split_like = {name for name in children if name.lower() in SPLIT_SYNONYMS}
    if split_like:
        others = sorted(set(children) - split_like)
        if others:
            raise FolderFormatError(
                f"{root}: holds split folders ({', '.join(sorted(split_like))}) beside other folders "
                f"({', '.join(others)}); use either DIR/<split>/<class>/ or DIR/<class>/ (split folder names: "
                f"{', '.join(SPLIT_SYNONYMS)})")
        split_folder_names = {}
        for name in sorted(split_like):
            split = SPLIT_SYNONYMS[name.lower()]
            if split in split_folder_names:
                raise FolderFormatError(f"{root}: folders {split_folder_names[split]} and {name} are both the "
                                        f"{split} split; keep one")
            split_folder_names[split] = name
        split_dirs = {split: os.path.join(root, name) for split, name in split_folder_names.items()}
    else:
        split_folder_names, split_dirs = {"Training": ""}, {"Training": root}
    splits, loose = {}, {}
    for split, directory in split_dirs.items():
        folders = _subfolders(directory)
        if not folders:
            raise FolderFormatError(f"{directory}: no class folders: expected {directory}{os.sep}<class>{os.sep}"
                                    f"<images> with a folder per class ({_accepted_names(class_map)})")
        splits[split] = {name: _class_of_folder(os.path.join(directory, name), name, class_map) for name in folders}
        loose[split] = [entry.path for entry in os.scandir(directory) if entry.is_file()]
    return FolderLayout(root, bool(split_like), split_dirs, split_folder_names, splits, loose)


def relative_name(layout: FolderLayout, split: str, folder: str) -> str:
    """A class folder's name below the root: ``train/happy`` with split folders, ``happy`` without."""
    return f"{layout.split_folder_names[split]}/{folder}" if layout.has_split_folders else folder


def _subfolders(directory: str) -> list[str]:
    # Hidden folders and the resource forks of macOS zips are not class folders.
    return sorted(entry.name for entry in os.scandir(directory)
                  if entry.is_dir() and not entry.name.startswith(".") and entry.name != "__MACOSX")


def files_below(directory: str) -> list[str]:
    """Every file under ``directory`` (subfolders too, such as one per subject), sorted, hidden ones left out."""
    paths = []
    for parent, folders, names in os.walk(directory, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        paths.extend(os.path.join(parent, name) for name in names if not name.startswith("."))
    return sorted(paths)


def normalized_class_map(class_map: Mapping | None) -> dict:
    """``class_map`` with lower-case keys and canonical spellings of known class names."""
    if class_map is None:
        return {}
    if not isinstance(class_map, Mapping):
        raise ValueError(f"class_map must be a dict of folder name -> class name. Received: class_map={class_map!r}")
    normalized = {}
    for folder, name in class_map.items():
        if not isinstance(folder, (str, int)) or (name is not None and (not isinstance(name, str) or not name.strip())):
            raise ValueError(f"class_map must map folder names to class names (or None to leave a folder out). "
                             f"Received: {folder!r}: {name!r} in class_map={dict(class_map)!r}")
        key = str(folder).strip().lower()
        if key in normalized and normalized[key] != _canonical(name):
            raise ValueError(f"class_map maps folder {folder!r} twice (folder names are matched without regard "
                             f"to case). Received: class_map={dict(class_map)!r}")
        normalized[key] = _canonical(name)
    return normalized


def _canonical(name: str | None) -> str | None:
    """A class name in its canonical spelling when it is one (or a synonym), else as given."""
    if name is None:
        return None
    name = name.strip()
    return CLASS_SYNONYMS.get(name.lower(), name)


def _class_of_folder(path: str, name: str, class_map: dict) -> str | None:
    key = name.strip().lower()
    if key in class_map:
        return class_map[key]
    if key in CLASS_SYNONYMS:
        return CLASS_SYNONYMS[key]
    raise FolderFormatError(f"{path}: unknown class folder {name!r}; accepted (without regard to case): "
                            f"{_accepted_names(class_map)}; map others with class_map, e.g. "
                            f"class_map={{{name!r}: 'Pain'}} (or {{{name!r}: None}} to leave it out)")


def _accepted_names(class_map: dict) -> str:
    by_class: dict[str, list[str]] = {}
    for synonym, name in CLASS_SYNONYMS.items():
        by_class.setdefault(name, []).append(synonym)
    text = "; ".join(f"{name}: {', '.join(synonyms)}" for name, synonyms in by_class.items())
    return text + (f"; class_map: {', '.join(class_map)}" if class_map else "")


def resolve_class_names(layout: FolderLayout, labels) -> tuple:
    """The class list of a label mode, checking that every mapped folder's class is in it."""
    mapped = {(split, folder): name for split, folders in layout.splits.items()
              for folder, name in folders.items() if name is not None}
    if isinstance(labels, str):
        if labels not in LABEL_MODES_WITH_FOLDERS:
            raise ValueError(f"labels must be one of {', '.join(LABEL_MODES_WITH_FOLDERS)} or a sequence of class "
                             f"names. Received: labels={labels!r}")
        if labels == "folders":
            # Only classes with image files: an empty folder would be a class no example teaches.
            present = {name for (split, folder), name in mapped.items()
                       if _holds_an_image(os.path.join(layout.split_dirs[split], folder))}
            if not present:
                raise FolderFormatError(f"{layout.root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in its "
                                        "class folders")
            canonical = [name for name in CANONICAL_CLASS_NAMES if name in present]
            return (*canonical, *sorted(present - set(canonical)))
        names = label_mode_class_names(labels)
    else:
        names = tuple(labels)
        if not names or not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
            raise ValueError(f"labels as class names must be distinct strings. Received: labels={labels!r}")
    for (split, folder), name in sorted(mapped.items()):
        if name not in names:
            where = os.path.join(layout.split_dirs[split], folder)
            raise FolderFormatError(
                f"{where}: folder {folder!r} holds class {name!r}, which labels={labels!r} lacks (classes: "
                f"{', '.join(names)}); leave it out with class_map={{{folder!r}: None}}, map it to one of those "
                f"classes, or read the folder with labels='folders'")
    return names


def _holds_an_image(directory: str) -> bool:
    for _, _, names in os.walk(directory, followlinks=True):
        if any(os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".") for name in names):
            return True
    return False
