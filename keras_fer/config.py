"""Training configuration: a typed schema, YAML loading and `--set key=value` overrides.

A configuration is a tree of dataclasses (`Config` and its sections). Every field has a type,
a default and a one-line doc (`field(..., doc=...)`); `describe()` lists them all. Loading is
strict, so that a typo cannot silently fall back to a default:

- an unknown key is an error naming its dotted path (`training.optimiser`),
- a value of the wrong type, or outside its choices, is an error naming the key,
- a file that is not YAML, or whose top level is not a mapping, is an error naming the file.

Example:
>>> config = load_config(None, overrides=["training.batch_size=16", "model.width=8"])
>>> config.training.batch_size, config.model.width
(16, 8)
>>> load_config(None, overrides=["training.batchsize=16"])
Traceback (most recent call last):
...
keras_fer.config.ConfigError: training.batchsize: unknown key; known keys of training: ...
"""

import dataclasses
import os
import re
import types
import typing

import yaml

SPLITS = ("Training", "PublicTest", "PrivateTest")
SCHEDULES = ("plateau", "cosine")
LABEL_MODES = ("fer2013", "ferplus", "ferplus8", "folders")
TARGET_KINDS = ("labels", "votes")
PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")
_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A configuration that does not parse, has an unknown key, or a value of the wrong type."""


def field(default, doc, choices=None):
    """A dataclass field with its documentation and, optionally, the values it may take."""
    metadata = {"doc": doc, "choices": choices}
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _copy(value):
    return dataclasses.replace(value) if dataclasses.is_dataclass(value) else type(value)(value)


@dataclasses.dataclass
class SyntheticConfig:
    """The built-in synthetic faces (`data.source: synthetic`)."""

    train_per_class: int = field(300, "synthetic faces per class in the Training split")
    validation_per_class: int = field(60, "synthetic faces per class in the PublicTest split")
    test_per_class: int = field(60, "synthetic faces per class in the PrivateTest split")
    seed: int = field(0, "the synthetic data set is a function of this seed")


@dataclasses.dataclass
class DataConfig:
    """Where the faces come from and which splits train, select and test."""

    source: str = field("synthetic", "`synthetic`, the path of fer2013.csv (plain or .gz), or an image folder "
                        "DIR/<class>/* or DIR/<split>/<class>/* (docs/data.md); --data sets it")
    labels: str = field("fer2013", "label mode: fer2013 (7 classes), ferplus (7) or ferplus8 (8); with an image "
                        "folder also `folders`: the classes are the folders' own", LABEL_MODES)
    ferplus_path: typing.Optional[str] = field(None, "FERPlus vote file fer2013new.csv, for the ferplus modes")
    targets: str = field("labels", "what training aims at: `labels` (one class a face) or, in the ferplus modes, "
                         "`votes` (each face's share of the annotators' votes for each class; evaluation still "
                         "scores the majority labels)", TARGET_KINDS)
    train_split: str = field("Training", "split the model trains on", SPLITS)
    validation_split: str = field("PublicTest", "split that selects the best epoch and drives the callbacks", SPLITS)
    test_split: str = field("PrivateTest", "split reported once at the end; reported absent if the file lacks it", SPLITS)
    cache: bool = field(True, "keep decoded training faces in memory after the first epoch (tf.data)")
    class_map: typing.Dict[str, typing.Optional[str]] = field(
        {}, "image folders: folder name -> class name, for folders that are not a class name or a listed "
        "synonym; null leaves a folder out (docs/data.md)")
    detect_faces: bool = field(False, "image folders: find the face in each image and crop it as photos are "
                               "cropped (keras_fer.faces), for images that are not face crops already")
    validation_fraction: float = field(0.1, "image folders without split folders: the share of each class held "
                                       "out (seeded by training.seed) as the validation split")
    synthetic: SyntheticConfig = field(SyntheticConfig(), "sizes and seed of the synthetic faces")


@dataclasses.dataclass
class AugmentationConfig:
    """Training-only augmentation inside the model (`FaceAugmentation`)."""

    flip: bool = field(True, "random horizontal flip")
    shift: float = field(0.1, "random shift, fraction of the image side")
    rotation_degrees: float = field(10.0, "random rotation, at most this many degrees either way")
    zoom: float = field(0.1, "random zoom, fraction either way")


@dataclasses.dataclass
class ModelConfig:
    """Arguments of `keras_fer.models.build_model`; the class count follows `data.labels`."""

    input_size: int = field(224, "side of the square image the backbone sees (every U-Net must pool it exactly)")
    stem: str = field("imagenet", "imagenet (7x7/2 + max-pool, the paper's), conv3x3 (stride 1) or conv3x3_s2 (stride 2)",
                      ("imagenet", "conv3x3", "conv3x3_s2"))
    width: int = field(64, "channels of the first stage (64 in ResNet34); every stage scales with it")
    mask_depths: typing.List[int] = field([4, 3, 2, 1], "U-Net mask depth after each of the 4 stages")
    mask_width: float = field(1.0, "multiplier of the U-Net masks' channels (1: the paper's C*2^i at level i)")
    use_masks: bool = field(True, "the ECA-U-Net masks; false gives a plain ResNet34")
    use_eca: bool = field(True, "ECA in the mask encoders; false gives the Residual Masking Network")
    mask_activation: str = field("softmax", "mask output: softmax over channels or sigmoid", ("softmax", "sigmoid"))
    dropout: float = field(0.0, "dropout before the classifier")
    eca_gamma: int = field(2, "ECA adaptive kernel-size gamma")
    eca_b: int = field(1, "ECA adaptive kernel-size b")
    augmentation: typing.Optional[AugmentationConfig] = field(
        AugmentationConfig(), "training-only augmentation; null for none"
    )


@dataclasses.dataclass
class OptimizerConfig:
    """The optimizer; `weight_decay` is Keras's decoupled decay (see configs/paper.yaml)."""

    name: str = field("sgd", "sgd or adamw", ("sgd", "adamw"))
    learning_rate: float = field(1e-4, "initial learning rate")
    momentum: float = field(0.9, "SGD momentum (sgd only)")
    nesterov: bool = field(False, "Nesterov momentum (sgd only)")
    weight_decay: float = field(1e-3, "decoupled weight decay: w -= learning_rate * weight_decay * w each step")


@dataclasses.dataclass
class ReduceLRConfig:
    """`keras.callbacks.ReduceLROnPlateau` on `training.monitor`."""

    factor: float = field(0.1, "multiply the learning rate by this on a plateau")
    patience: int = field(2, "epochs without improvement before reducing")
    min_lr: float = field(0.0, "lower bound of the learning rate")


@dataclasses.dataclass
class EarlyStoppingConfig:
    """`keras.callbacks.EarlyStopping` on `training.monitor`."""

    patience: int = field(8, "epochs without improvement before stopping")
    restore_best_weights: bool = field(True, "end with the weights of the best epoch")


@dataclasses.dataclass
class TrainingConfig:
    """The `model.fit` recipe."""

    batch_size: int = field(48, "global batch size (split across replicas under a strategy)")
    epochs: int = field(50, "the most epochs to train")
    steps_per_epoch: typing.Optional[int] = field(None, "batches per epoch; null for the whole training split")
    validation_steps: typing.Optional[int] = field(None, "validation batches per epoch; null for the whole split")
    monitor: str = field("val_accuracy", "quantity that picks the best epoch and drives the callbacks",
                         ("val_accuracy", "val_loss"))
    seed: int = field(42, "seed of weights, shuffling and augmentation")
    verbose: typing.Union[int, str] = field(
        "auto", "Keras progress: auto, 0 silent, 1 progress bar, 2 one line per epoch", ("auto", 0, 1, 2)
    )
    optimizer: OptimizerConfig = field(OptimizerConfig(), "optimizer settings")
    schedule: str = field(
        "plateau", "learning rate over time: plateau (constant, cut by reduce_lr) or cosine (linear warm-up "
        "over warmup_epochs, then cosine decay to 0 at the end of the last epoch)", SCHEDULES
    )
    warmup_epochs: int = field(0, "cosine schedule: epochs of linear warm-up from 0 to optimizer.learning_rate")
    label_smoothing: float = field(0.0, "label smoothing of the cross-entropy loss, in [0, 1)")
    reduce_lr: ReduceLRConfig = field(ReduceLRConfig(), "learning-rate reduction on a plateau (schedule: plateau)")
    early_stopping: EarlyStoppingConfig = field(EarlyStoppingConfig(), "early stopping")
    init: typing.Optional[str] = field(
        None, "start from these weights: a shipped preset name (fer2013, ferplus) or a trained .keras file; the "
        "network (model.*) must be the one it was trained as; the classifier's rows of classes it lacks start "
        "afresh (--init sets it)"
    )
    freeze_epochs: int = field(0, "first epochs that train only the classifier, the rest of the network frozen "
                               "(batch normalization too); then all of it (fine-tuning with training.init)")
    teacher: typing.Optional[str] = field(
        None, "knowledge distillation: a model whose probabilities for each training face are mixed into that "
        "face's target, a preset name (fer2013), PRESET:memberN or a trained .keras file giving the run's "
        "classes; the training split is then held in memory (docs/training.md); null for none"
    )
    teacher_weight: float = field(0.5, "with training.teacher: each training target is (1 - teacher_weight) x the "
                                       "face's label (or vote shares) + teacher_weight x the teacher's probabilities, "
                                       "in (0, 1]")
    time_limit_minutes: typing.Optional[float] = field(
        None, "stop training (then evaluate as usual) once the next epoch would end past this many minutes of "
        "this invocation; with epochs left the backup is kept and the same command continues the run; "
        "null for no limit"
    )


@dataclasses.dataclass
class RuntimeConfig:
    """How the computation runs: precision, compilation and devices."""

    mixed_precision: str = field("float32", "Keras dtype policy", PRECISION_POLICIES)
    jit_compile: typing.Union[bool, str] = field(
        "auto", "XLA compilation: true, false or auto (Keras decides)", (True, False, "auto")
    )
    strategy: str = field(
        "default",
        "tf.distribute strategy: default (none), one_device, mirrored (local GPUs, else local CPUs), "
        "multi_worker (TF_CONFIG); TensorFlow backend only",
        STRATEGIES,
    )


@dataclasses.dataclass
class Config:
    """A whole training run."""

    data: DataConfig = field(DataConfig(), "data source and splits")
    model: ModelConfig = field(ModelConfig(), "network")
    training: TrainingConfig = field(TrainingConfig(), "fit recipe")
    runtime: RuntimeConfig = field(RuntimeConfig(), "precision, compilation, devices")

    def to_dict(self):
        """The configuration as plain YAML-ready values."""
        return dataclasses.asdict(self)


def load_config(path=None, overrides=()):
    """Reads a YAML configuration over the defaults, then applies `key=value` overrides.

    Args:
        path: YAML file, or None for the defaults alone.
        overrides: strings `dotted.key=value`; the value is parsed as YAML (`1e-3`, `true`,
            `null`, `[4, 3, 2, 1]`), so it takes the type the schema expects.
    Returns:
        A validated `Config`.
    Raises:
        ConfigError: unreadable or unparsable file, unknown key, wrong type or value.
    """
    values = _read_yaml(path) if path is not None else {}
    for override in overrides:
        key, value = _parse_override(override)
        _set_dotted(values, key, value)
    config = from_dict(Config, values)
    check_relations(config)
    return config


def check_relations(config):
    """Raises ConfigError where values that are each valid do not fit together."""
    training = config.training
    if not 0 <= training.warmup_epochs < training.epochs:
        raise ConfigError(
            f"training.warmup_epochs: must be at least 0 and less than training.epochs ({training.epochs}), "
            f"got {training.warmup_epochs}"
        )
    if not 0 <= training.freeze_epochs < training.epochs:
        raise ConfigError(
            f"training.freeze_epochs: must be at least 0 and less than training.epochs ({training.epochs}), "
            f"got {training.freeze_epochs}"
        )
    if training.freeze_epochs and training.init is None:
        raise ConfigError(f"training.freeze_epochs: {training.freeze_epochs} freezes a network that starts from "
                          "random weights; set training.init (--init fer2013) or freeze_epochs 0")
    if not 0.0 < config.data.validation_fraction < 1.0:
        raise ConfigError(f"data.validation_fraction: must be in (0, 1), got {config.data.validation_fraction}")
    if config.data.labels == "folders" and os.path.splitext(config.data.source)[1] in (".csv", ".gz") \
            or config.data.labels == "folders" and config.data.source == "synthetic":
        raise ConfigError(f"data.labels: `folders` takes its classes from an image folder; data.source is "
                          f"{config.data.source!r}")
    if config.data.targets == "votes" and config.data.labels not in ("ferplus", "ferplus8"):
        raise ConfigError(f"data.targets: `votes` are FERPlus's annotator votes and need data.labels ferplus or "
                          f"ferplus8 (with a FER2013 CSV and data.ferplus_path), got data.labels "
                          f"{config.data.labels!r}")
    if training.teacher is not None and not 0.0 < training.teacher_weight <= 1.0:
        raise ConfigError(f"training.teacher_weight: must be in (0, 1] with a teacher, got {training.teacher_weight}")
    if training.teacher is not None and config.runtime.strategy == "multi_worker":
        raise ConfigError("training.teacher: distillation holds the training split in memory as NumPy arrays, "
                          "which runtime.strategy multi_worker cannot shard; use one machine's strategy")
    if not 0.0 <= training.label_smoothing < 1.0:
        raise ConfigError(f"training.label_smoothing: must be in [0, 1), got {training.label_smoothing}")


def from_dict(schema, values, prefix=""):
    """Builds dataclass `schema` from a mapping, checking every key and type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'}: expected a mapping, got {_describe_value(values)}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; known keys of {where}: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        key = prefix + name
        kwargs[name] = _check_value(value, hints[name], key)
        choices = fields[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            raise ConfigError(f"{key}: {kwargs[name]!r} is not one of {', '.join(map(str, choices))}")
    return schema(**kwargs)


def _check_value(value, expected, key):
    """Returns `value` as type `expected` (int widened to float, nested mappings built)."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        options = [option for option in options if option is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error says more (e.g. a nested unknown key)
            return _check_value(value, options[0], key)
        for option in options:
            try:
                return _check_value(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(expected)}, got {_describe_value(value)}")
    if dataclasses.is_dataclass(expected):
        return from_dict(expected, value, key + ".")
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected {_type_name(expected)}, got {_describe_value(value)}")
        return {_check_value(name, key_type, f"{key} key"): _check_value(item, value_type, f"{key}[{name!r}]")
                for name, item in value.items()}
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(expected)}, got {_describe_value(value)}")
        return [_check_value(item, item_type, f"{key}[{index}]") for index, item in enumerate(value)]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # PyYAML follows YAML 1.1, where `1e-4` (no dot) is a string, not a number.
    if expected is float and isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
        return float(value)
    # bool is an int subclass; `true` must not pass as an epoch count.
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {_type_name(expected)}, got {_describe_value(value)}")
    return value


def _type_name(expected):
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(option) for option in typing.get_args(expected))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(expected)[0])}"
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        return f"a mapping of {_type_name(key_type)} to {_type_name(value_type)}"
    if expected is type(None):
        return "null"
    if dataclasses.is_dataclass(expected):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}[expected]


def _describe_value(value):
    return "null" if value is None else f"{value!r} ({type(value).__name__})"


def _read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: configuration file not found")
    try:
        with open(path, encoding="utf-8") as file:
            values = yaml.safe_load(file)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(values).__name__}")
    return values


def _parse_override(override):
    key, separator, text = override.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"--set {override!r}: expected dotted.key=value")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {key.strip()}: value {text!r} is not valid YAML: {error}") from None


def _set_dotted(values, key, value):
    """Sets `values["a"]["b"] = value` for key "a.b", creating sections as needed."""
    *sections, leaf = key.split(".")
    node = values
    for depth, section in enumerate(sections):
        child = node.setdefault(section, {})
        if child is None:  # `--set model.augmentation.flip=false` over `augmentation: null`
            child = node[section] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(sections[: depth + 1])}: is a value, not a section; cannot set {key}")
        node = child
    node[leaf] = value


def to_yaml(config):
    """The resolved configuration as YAML text (keys in schema order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def describe(schema=Config, prefix=""):
    """Lines `dotted.key (type, default): doc` for every leaf field of the schema."""
    lines = []
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        key = prefix + item.name
        nested = _nested_schema(hints[item.name])
        if nested is not None:
            lines.extend(describe(nested, key + "."))
            continue
        default = item.default_factory() if item.default is dataclasses.MISSING else item.default
        choices = item.metadata.get("choices")
        allowed = f"; one of {', '.join(map(str, choices))}" if choices else ""
        lines.append(f"{key} ({_type_name(hints[item.name])}, default {default!r}{allowed}): {item.metadata['doc']}")
    return lines


def _nested_schema(expected):
    """The dataclass section inside a type (also inside Optional[...]), or None."""
    if dataclasses.is_dataclass(expected):
        return expected
    for option in typing.get_args(expected):
        if dataclasses.is_dataclass(option):
            return option
    return None
