"""Pretrained models shipped inside the package, loaded by name, in the style of keras-hub presets.

A preset is one `.npz` file in `keras_fer/presets/`: the keyword arguments of
`keras_fer.models.build_model`, the class names and a description (JSON, under the key
`metadata`), and every variable of the inference model stored as float16 under its Keras
variable path (`weights/stage1_block1/conv1/kernel`, ...); or, with `weight_storage="int8"`,
each kernel of 1,024 values or more stored as int8 with one float32 scale per output channel
under `scales/` + the same path, which halves a file. A preset may instead hold an
ensemble (`keras_fer.models.build_ensemble`): one set of build arguments per network, under
`members`, and network i's variables under `weights/member<i>/`. Loading builds the network(s)
in float32 on the current backend (TensorFlow or JAX) and assigns the weights, after checking
the file's sha256 against `PRESETS`, so that a damaged or swapped file is refused rather
than silently giving other predictions.

Example:
>>> import numpy as np
>>> import keras_fer
>>> model = keras_fer.pretrained.load("fer2013")
>>> model.predict(np.zeros((1, 48, 48, 1), "uint8"), verbose=0).shape
(1, 7)
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from keras_fer import files

PRESET_DIR = Path(__file__).resolve().parent / "presets"
METADATA_KEY = "metadata"
WEIGHTS_PREFIX = "weights/"
# The per-output-channel scales of the kernels a file stores as int8, under the kernels' own keys.
SCALES_PREFIX = "scales/"
WEIGHT_STORAGES = ("float16", "int8")
# Under int8 storage, kernels of at least this many values are int8; biases, normalization and
# ECA's small 1-D kernels stay float16, where int8 would save little and cost most.
INT8_MIN_SIZE = 1024
# The metadata key of an ensemble's build arguments, one dict per network.
MEMBERS_KEY = "members"
# Every preset: its file in PRESET_DIR, the file's sha256 and what it is.
PRESETS = {
    "fer2013": {
        "file": "fer2013.npz",
        "sha256": "b993294da5b72b55bdce7a04dd84063029cad2abf43621f6bfc947cb6b5a70d0",
        "description": "ResNet34 + ECA-U-Net masks (48 px, conv3x3_s2 stem, width 16, mask width 0.5, 3.5 M "
                       "parameters, each face averaged with its mirror image) trained on FER2013 Training by "
                       "configs/fer2013_cpu.yaml; PublicTest 69.30%. See docs/model_card.md.",
    },
    "fer2013_ensemble": {
        "file": "fer2013_ensemble.npz",
        "sha256": "4be279d7de15198c994d82607557c8a41ce5278c91449b1a6dd64984c7af111b",
        "description": "an ensemble of two networks trained on FER2013 by configs/fer2013_cpu.yaml, each face's "
                       "probabilities averaged over them: member1 the fer2013 preset (seed 42), member2 the same "
                       "recipe from scratch with seed 43; PublicTest 69.82%. See docs/model_card_fer2013_ensemble.md.",
    },
    "ferplus": {
        "file": "ferplus.npz",
        "sha256": "5677f65a20dd783a14d09f91a65defdddade61dba67c8d1c515674d1ca668338",
        "description": "an ensemble of two networks fine-tuned on FERPlus (8 classes with Contempt), each face's "
                       "probabilities averaged over them: member1 the FER2013 preset fine-tuned on FERPlus's vote "
                       "shares (configs/ferplus8_finetune.yaml, stride 2), member2 a second such run fine-tuned "
                       "further at stride 1 (configs/ferplus8_stride1.yaml); FERPlus PublicTest 86.13% (majority "
                       "labels). See docs/model_card_ferplus.md.",
    },
}


class PresetError(ValueError):
    """An unknown preset name, a missing or damaged preset file, or weights that do not fit."""


def available():
    """Names of the presets shipped with the package.

    Example:
    >>> "fer2013" in available()
    True
    """
    return sorted(PRESETS)


def preset_of(name):
    """The preset that `name` refers to: `PRESET` itself, or the `PRESET` of `PRESET:memberN`.

    Example:
    >>> preset_of("ferplus:member1"), preset_of("fer2013")
    ('ferplus', 'fer2013')
    """
    return name.partition(":")[0]


def names_a_preset(path):
    """True when `path` is a preset's name, or `PRESET:memberN`, and no file or directory of that name exists.

    Example:
    >>> names_a_preset("fer2013"), names_a_preset("ferplus:member1")
    (True, True)
    """
    return not os.path.exists(path) and preset_of(path) in PRESETS


def preset_path(name):
    """The path of preset `name`'s file; PresetError if the name is unknown."""
    if name not in PRESETS:
        raise PresetError(f"Unknown preset {name!r}; available: {', '.join(available())}. Received: name={name!r}")
    return PRESET_DIR / PRESETS[name]["file"]


def file_sha256(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_preset_file(path, expected_sha256=None):
    """(metadata dict, {variable path: array}) from a preset file: float16 arrays, int8 kernels decoded to float32.

    Args:
        path: the `.npz` file.
        expected_sha256: hex digest the file must have, or None not to check.
    Raises:
        PresetError: missing file, wrong sha256, or not a preset file.
    """
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"{path}: preset file not found (a `pip install` that left out package data?)")
    if expected_sha256 is not None:
        actual = file_sha256(path)
        if actual != expected_sha256:
            raise PresetError(f"{path}: sha256 is {actual}, expected {expected_sha256}: the file is damaged or "
                              "not the one this version of keras_fer ships")
    try:
        with np.load(path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive[METADATA_KEY]))
            weights = decoded_weights({key: archive[key] for key in archive.files if key != METADATA_KEY})
    except (OSError, ValueError, KeyError) as error:
        raise PresetError(f"{path}: not a keras_fer preset file ({type(error).__name__}: {error})") from None
    return metadata, weights


def build_with_weights(build, weights, class_names, source="the weights"):
    """The float32 inference network of `build` with `weights` assigned.

    Args:
        build: dict of `keras_fer.models.build_model` keyword arguments (no augmentation).
        weights: {variable path: array}, one for every variable of the network.
        class_names: the class names in output order, kept as the model's `class_names`.
        source: what the weights come from, for error messages.
    Raises:
        PresetError: the weights do not match the network's variables.
    """
    from keras_fer.models import build_model

    model = build_model(**build, augmentation=None)
    variables = {variable.path: variable for variable in model.weights}
    missing = sorted(set(variables) - set(weights))
    unexpected = sorted(set(weights) - set(variables))
    if missing or unexpected:
        raise PresetError(f"{source}: the weights do not fit the network: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    for key, variable in variables.items():
        if tuple(weights[key].shape) != tuple(variable.shape):
            raise PresetError(f"{source}: weight {key} has shape {weights[key].shape}, the network {variable.shape}")
        variable.assign(weights[key].astype(variable.dtype))
    model.class_names = tuple(class_names)
    return model


def member_name(index):
    """The name of an ensemble's network `index` (1-based): its model name and its weights' prefix."""
    return f"member{index}"


def networks_of(metadata, weights, source="the weights"):
    """[(build arguments, {variable path: array})], one pair per network of a preset file.

    Args:
        metadata, weights: as `read_preset_file` returns them.
        source: what the weights come from, for error messages.
    Raises:
        PresetError: an ensemble's file holds weights of no member.
    """
    if MEMBERS_KEY not in metadata:
        return [(metadata["build"], weights)]
    networks, claimed = [], set()
    for index, build in enumerate(metadata[MEMBERS_KEY], start=1):
        prefix = member_name(index) + "/"
        own = {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
        claimed.update(prefix + key for key in own)
        networks.append((build, own))
    stray = sorted(set(weights) - claimed)
    if stray:
        raise PresetError(f"{source}: weights of no member of the ensemble: {stray[:3]}")
    return networks


def model_from_networks(networks, class_names, source="the weights"):
    """The float32 inference model of one network, or the ensemble of several.

    Args:
        networks: list of (build arguments, {variable path: array}), as `networks_of` gives.
        class_names: the class names in output order, kept as the model's `class_names`.
        source: what the weights come from, for error messages.
    Raises:
        PresetError: weights that do not match their network.
    """
    from keras_fer.models import build_ensemble

    if len(networks) == 1:
        ((build, weights),) = networks
        return build_with_weights(build, weights, class_names, source)
    members = [build_with_weights({**build, "name": member_name(index)}, weights, class_names,
                                  f"{source} ({member_name(index)})")
               for index, (build, weights) in enumerate(networks, start=1)]
    model = build_ensemble(members)
    model.class_names = tuple(class_names)
    return model


def load_file(path, expected_sha256=None):
    """Builds the float32 inference model stored in a preset file and loads its weights.

    Args:
        path: a preset `.npz` file (as `save` writes).
        expected_sha256: hex digest the file must have, or None not to check.
    Returns:
        A `keras.Model` from raw faces (batch, 48, 48, 1) uint8 or float 0-255 to class
        probabilities, not compiled. Its `class_names` attribute lists the classes in output order.
    Raises:
        PresetError: see `read_preset_file`, or weights that do not match the network.
    """
    metadata, weights = read_preset_file(path, expected_sha256)
    return model_from_networks(networks_of(metadata, weights, source=str(path)), metadata["class_names"],
                               source=str(path))


def read_shipped_file(preset):
    """(metadata, weights) of shipped preset `preset`'s file, as `read_preset_file` gives them, its sha256 checked."""
    return read_preset_file(preset_path(preset), PRESETS[preset]["sha256"])


def member_names(preset, count):
    """The names of an ensemble preset's `count` networks: `PRESET:member1`, ...; [PRESET] for one network."""
    return [preset] if count == 1 else [f"{preset}:{member_name(index)}" for index in range(1, count + 1)]


def preset_networks(name):
    """(metadata, [(build arguments, weights)]) of preset `name`, its file's sha256 checked.

    Args:
        name: a preset name, one of `available()`, whose every network is returned; or
            `PRESET:memberN`, network N of an ensemble preset alone, with metadata of its own:
            that network's build arguments and provenance, as a one-network preset has them.
    Raises:
        PresetError: an unknown preset or network, or a damaged file.
    """
    preset = preset_of(name)
    metadata, weights = read_shipped_file(preset)
    networks = networks_of(metadata, weights, source=preset)
    if name == preset:
        return metadata, networks
    names = member_names(preset, len(networks))
    if name not in names:
        raise PresetError(f"Preset {preset!r} has no network {name!r}; name one of {', '.join(names)}. "
                          f"Received: name={name!r}")
    index = names.index(name)
    build, network_weights = networks[index]
    own = {key: value for key, value in metadata.items() if key != MEMBERS_KEY}
    own.update(build=build, provenance=metadata["provenance"]["members"][index])
    return own, [(build, network_weights)]


def preset_network(name):
    """(metadata, build arguments, weights) of one shipped network: a one-network preset, or `PRESET:memberN`.

    What starts from a single network (fine-tuning, `tools/ship_model.py`) reads it here.

    Args:
        name: as for `preset_networks`; the metadata is that network's own.
    Raises:
        PresetError: see `preset_networks`, or an ensemble preset named whole.

    Example:
    >>> metadata, build, weights = preset_network("ferplus:member1")
    >>> metadata["class_names"][-1], build["width"]
    ('Contempt', 16)
    """
    metadata, networks = preset_networks(name)
    if len(networks) > 1:
        raise PresetError(f"Preset {name!r} is an ensemble of {len(networks)} networks, and this needs one "
                          f"network: name one of {', '.join(member_names(name, len(networks)))}. "
                          f"Received: name={name!r}")
    ((build, weights),) = networks
    return metadata, build, weights


def load(name="fer2013"):
    """The shipped model `name`, built on the current Keras backend, its file's sha256 checked.

    Args:
        name: a preset name, one of `available()`, or `PRESET:memberN` for network N of an
            ensemble preset alone (`ferplus:member1`: one network, at half the ensemble's cost).
    Returns:
        See `load_file`.

    Example:
    >>> model = load("fer2013")
    >>> model.class_names[3]
    'Happy'
    """
    metadata, networks = preset_networks(name)
    return model_from_networks(networks, metadata["class_names"], source=name)


def metadata(name="fer2013"):
    """The metadata dict of preset `name` (build arguments, class names, provenance), as `preset_networks` gives it.

    A whole ensemble's metadata lists its members' builds and provenance; `PRESET:memberN`'s is that
    network's own.

    Example:
    >>> metadata("ferplus:member1")["provenance"]["labels"]
    'ferplus8'
    """
    return preset_networks(name)[0]


def float16_weights(model, build):
    """{variable path: float16 array} of the inference network of `build`, taken from `model`.

    Args:
        model: a trained model of `keras_fer.models.build_model` (its augmentation layer, which
            inference does not have, carries no weights and may be present).
        build: dict of `build_model` keyword arguments that rebuild the network.
    Raises:
        PresetError: `model` lacks a variable of the network, or a value overflows float16.
    """
    import keras

    from keras_fer.models import build_model

    trained = {variable.path: variable for variable in model.weights}
    weights = {}
    for variable in build_model(**build, augmentation=None).weights:
        if variable.path not in trained:
            raise PresetError(f"the model has no variable {variable.path}: it is not the network `build` describes")
        value = np.asarray(keras.ops.convert_to_numpy(trained[variable.path]), np.float32)
        if not np.all(np.isfinite(value.astype(np.float16))):
            raise PresetError(f"{variable.path}: values beyond float16's range ({np.abs(value).max():g})")
        weights[variable.path] = value.astype(np.float16)
    return weights


def encoded_weights(weights, weight_storage="float16"):
    """{archive key: array} of weights as a preset file stores them: float16, or int8 kernels and their scales.

    Args:
        weights: {variable path: array}; a path may carry a member's prefix (`member1/...`).
        weight_storage: "float16" (every array), or "int8": each kernel of at least
            `INT8_MIN_SIZE` values as int8, symmetric, with one float32 scale per output channel
            (its last axis), the rest float16.
    Raises:
        ValueError: an unknown `weight_storage`.

    Example:
    >>> kernel = np.array([[0.5, -2.0], [-0.25, 1.0]] * 512, np.float32)
    >>> arrays = encoded_weights({"dense/kernel": kernel}, "int8")
    >>> arrays["weights/dense/kernel"].dtype, arrays["scales/dense/kernel"] * 127
    (dtype('int8'), array([0.5, 2. ], dtype=float32))
    """
    if weight_storage not in WEIGHT_STORAGES:
        raise ValueError(f"weight_storage must be one of {', '.join(WEIGHT_STORAGES)}. "
                         f"Received: weight_storage={weight_storage!r}")
    arrays = {}
    for key, value in weights.items():
        value = np.asarray(value)
        if weight_storage == "int8" and value.ndim >= 2 and value.size >= INT8_MIN_SIZE:
            channels = np.abs(value.astype(np.float32)).reshape(-1, value.shape[-1]).max(axis=0)
            scales = np.where(channels > 0, channels / 127, 1).astype(np.float32)
            arrays[WEIGHTS_PREFIX + key] = np.clip(np.round(value / scales), -127, 127).astype(np.int8)
            arrays[SCALES_PREFIX + key] = scales
        else:
            arrays[WEIGHTS_PREFIX + key] = value.astype(np.float16)
    return arrays


def decoded_weights(arrays):
    """{variable path: array} from a preset file's arrays: float16 as stored, int8 kernels times their scales."""
    weights = {}
    for key, value in arrays.items():
        if not key.startswith(WEIGHTS_PREFIX):
            continue
        path = key[len(WEIGHTS_PREFIX):]
        scales = arrays.get(SCALES_PREFIX + path)
        weights[path] = value if scales is None else value.astype(np.float32) * scales
    return weights


def stored_weights(weights, weight_storage="float16"):
    """`weights` as a preset file of `weight_storage` gives them back: what its users' models compute with."""
    return decoded_weights(encoded_weights(weights, weight_storage))


def save(path, networks, class_names, provenance, weight_storage="float16"):
    """Writes a preset file: build arguments, class names, provenance and the weights, float16 or int8.

    Args:
        path: the `.npz` file to write (`keras_fer.files`: complete or not at all).
        networks: list of (build, weights) pairs, one per network: `build` the dict of
            `build_model` keyword arguments that rebuild it, `weights` its {variable path:
            array} as `float16_weights` gives. Two or more make an ensemble.
        class_names: the class names in output order.
        provenance: JSON-ready dict: run, command, commit, accuracy, ...
        weight_storage: see `encoded_weights`; recorded in the file's metadata.
    Returns:
        The written file's sha256.
    """
    record = {"class_names": list(class_names), "provenance": provenance, "weight_storage": weight_storage}
    if len(networks) == 1:
        ((record["build"], weights),) = networks
    else:
        record[MEMBERS_KEY] = [build for build, _ in networks]
        weights = {f"{member_name(index)}/{key}": value
                   for index, (_, member_weights) in enumerate(networks, start=1) for key, value in member_weights.items()}
    arrays = encoded_weights(weights, weight_storage)
    with files.replaced_on_success(path) as partial:
        np.savez_compressed(partial, **{METADATA_KEY: np.array(json.dumps(record))}, **arrays)
    return file_sha256(path)


def cache_dir():
    """Where converted presets are kept: $KERAS_FER_CACHE, else ~/.cache/keras_fer."""
    return Path(os.environ.get("KERAS_FER_CACHE") or Path.home() / ".cache" / "keras_fer")


def tflite_file(name="fer2013", quantization="dynamic"):
    """The path of preset `name` converted to TFLite, converting it on first use (TensorFlow backend).

    The file is named after the preset's sha256, so a new preset is converted again, and written
    complete or not at all (`keras_fer.files`). Where the cache directory cannot be written, the
    file goes to a temporary directory removed when the process ends, with a warning.

    Args:
        name: a preset name, one of `available()`, or `PRESET:memberN` (see `load`).
        quantization: "dynamic" (int8 weights: the fastest variant that needs no calibration
            faces, which an installed package lacks; docs/deploy.md) or "none" (float32).
    Returns:
        `pathlib.Path` of the `.tflite` file.

    Example:
    >>> tflite_file("fer2013").suffix  # doctest: +SKIP
    '.tflite'
    """
    if quantization not in ("dynamic", "none"):
        raise PresetError(f"`quantization` must be 'dynamic' or 'none'. Received: quantization={quantization!r}")
    preset = preset_of(name)
    preset_path(preset)
    path = cache_dir() / f"{name.replace(':', '-')}-{PRESETS[preset]['sha256'][:16]}-{quantization}.tflite"
    if path.is_file():
        return path
    import tempfile

    from keras_fer import conversion

    model = load(name)
    with tempfile.TemporaryDirectory() as temporary:
        saved_model = conversion.export_saved_model(model, model.class_names, os.path.join(temporary, "1"))
        flatbuffer = conversion.convert_tflite(saved_model, quantization, model.class_names)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_bytes(path, flatbuffer)
    except OSError as error:
        # A read-only home (a container, a service account) must not stop the run that converted it.
        import atexit
        import shutil
        import warnings

        directory = tempfile.mkdtemp(prefix="keras_fer-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        warnings.warn(f"Cannot keep the converted preset in {path.parent} ({error}); it is used from a temporary "
                      "file for this process only, so the next one converts it again. Set KERAS_FER_CACHE to a "
                      "writable directory to keep it.", stacklevel=2)
        path = Path(directory) / path.name
        files.write_bytes(path, flatbuffer)
    return path
