"""The configuration schema: strict loading, overrides, and the shipped configs."""

import re
from pathlib import Path

import pytest

from keras_fer.config import Config, ConfigError, describe, load_config, to_yaml

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_paper_yaml_states_the_papers_recipe():
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "paper.yaml")
    assert (config.model.input_size, config.model.width, config.model.mask_depths) == (224, 64, [4, 3, 2, 1])
    assert config.model.use_masks and config.model.use_eca and config.model.mask_activation == "softmax"
    assert (config.training.batch_size, config.training.epochs) == (48, 50)
    optimizer = config.training.optimizer
    assert (optimizer.name, optimizer.learning_rate, optimizer.momentum, optimizer.weight_decay) == (
        "sgd", 1e-4, 0.9, 1e-3)
    assert config.training.monitor == "val_accuracy"
    assert (config.training.reduce_lr.factor, config.training.reduce_lr.patience) == (0.1, 2)
    assert config.training.early_stopping.patience == 8
    assert config.training.early_stopping.restore_best_weights
    assert (config.data.train_split, config.data.validation_split) == ("Training", "PublicTest")
    assert config.data.source != "synthetic"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_shipped_config_loads_and_documents_every_value(path):
    load_config(path)
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*[A-Za-z_]+:\s*\S", line.split("#")[0]):  # a key with a value
            previous = lines[number - 1].strip() if number else ""
            assert "#" in line or previous.startswith("#"), f"{path.name}:{number + 1} has no comment: {line}"


def test_overrides_take_yaml_values_and_nested_keys(tmp_path):
    path = write(tmp_path, "training:\n  epochs: 3\n")
    config = load_config(path, ["training.optimizer.learning_rate=1e-2", "model.mask_depths=[2, 2, 2, 1]",
                                "training.steps_per_epoch=null", "data.source=/x/fer2013.csv"])
    assert config.training.epochs == 3
    assert config.training.optimizer.learning_rate == 0.01  # YAML 1.1 reads 1e-2 as a string
    assert config.model.mask_depths == [2, 2, 2, 1]
    assert config.data.source == "/x/fer2013.csv"


def test_integers_widen_to_floats_but_booleans_are_not_numbers():
    assert load_config(None, ["training.optimizer.learning_rate=1"]).training.optimizer.learning_rate == 1.0
    with pytest.raises(ConfigError, match=r"^training\.epochs: expected an integer, got True"):
        load_config(None, ["training.epochs=true"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("training:\n  optimiser: {}\n", r"^training\.optimiser: unknown key; known keys of training: batch_size"),
        ("model:\n  augmentation:\n    flop: true\n", r"^model\.augmentation\.flop: unknown key"),
        ("trainig: {}\n", r"^trainig: unknown key; known keys of the top level: data, model"),
        ("training:\n  batch_size: big\n", r"^training\.batch_size: expected an integer, got 'big' \(str\)"),
        ("training:\n  epochs: 2.5\n", r"^training\.epochs: expected an integer, got 2\.5"),
        ("model:\n  mask_depths: [4, 3, two, 1]\n", r"^model\.mask_depths\[2\]: expected an integer"),
        ("model:\n  mask_depths: 4\n", r"^model\.mask_depths: expected a list of an integer"),
        ("training: 5\n", r"^training: expected a mapping, got 5"),
        ("runtime:\n  strategy: mirorred\n", r"^runtime\.strategy: 'mirorred' is not one of default, one_device"),
        ("runtime:\n  jit_compile: 1\n", r"^runtime\.jit_compile: expected true/false or a string, got 1"),
        ("runtime:\n  jit_compile: always\n", r"^runtime\.jit_compile: 'always' is not one of True, False, auto"),
        ("training:\n  verbose: 3\n", r"^training\.verbose: 3 is not one of auto, 0, 1, 2"),
    ],
)
def test_bad_values_are_errors_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_unknown_key_in_an_override_is_an_error():
    with pytest.raises(ConfigError, match=r"^training\.batchsize: unknown key"):
        load_config(None, ["training.batchsize=16"])
    with pytest.raises(ConfigError, match=r"expected dotted\.key=value"):
        load_config(None, ["training.epochs"])
    with pytest.raises(ConfigError, match=r"^training\.epochs: is a value, not a section"):
        load_config(None, ["training.epochs=3", "training.epochs.max=3"])


def test_file_that_does_not_parse_or_is_missing_is_an_error_naming_it(tmp_path):
    broken = write(tmp_path, "training:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(broken))}: not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match=r"top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match=r"configuration file not found"):
        load_config(tmp_path / "missing.yaml")


def test_augmentation_can_be_switched_off_and_on_again():
    assert load_config(None, ["model.augmentation=null"]).model.augmentation is None
    config = load_config(None, ["model.augmentation=null", "model.augmentation.flip=false"])
    assert config.model.augmentation.flip is False and config.model.augmentation.shift == 0.1


def test_resolved_yaml_round_trips(tmp_path):
    config = load_config(None, ["model.width=8", "model.augmentation=null", "runtime.jit_compile=false"])
    assert load_config(write(tmp_path, to_yaml(config))) == config
    assert Config() == load_config(None)


def test_describe_documents_every_key():
    lines = describe()
    keys = [line.split(" ")[0] for line in lines]
    assert "training.optimizer.weight_decay" in keys and "model.augmentation.zoom" in keys
    assert len(keys) == len(set(keys)) and all(line.split(": ", 1)[1].strip() for line in lines)
