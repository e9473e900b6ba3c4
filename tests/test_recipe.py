"""This project's training recipe: stems, the cosine schedule with warm-up, label smoothing."""

import math

import keras
import numpy as np
import pytest
from test_training import dry_run, tiny_config

from keras_fer.config import ConfigError, load_config
from keras_fer.data import read_fer2013, write_synthetic_fer2013
from keras_fer.data.ferplus import FERPLUS_COLUMNS, VOTE_COLUMNS
from keras_fer.losses import SparseCategoricalCrossentropy
from keras_fer.models import build_model, stage_sizes
from keras_fer.training import RunError, read_history, train


@pytest.mark.parametrize(
    "stem, input_size, sides",
    [("imagenet", 64, [16, 8, 4, 2]), ("conv3x3_s2", 48, [24, 12, 6, 3]), ("conv3x3", 48, [48, 24, 12, 6])],
)
def test_each_stem_gives_its_stage_sizes(stem, input_size, sides):
    model = build_model(input_size=input_size, width=4, stem=stem)
    assert stage_sizes(input_size, stem) == sides
    assert [model.get_layer(f"stage{i}_fused").output.shape[1] for i in range(1, 5)] == sides
    assert ("stem_pool" in {layer.name for layer in model.layers}) == (stem == "imagenet")
    assert model.get_layer("stem_conv").kernel.shape[:2] == ((7, 7) if stem == "imagenet" else (3, 3))


def test_a_stem_or_size_the_masks_cannot_pool_is_refused_up_front():
    with pytest.raises(ValueError, match=r"must be one of imagenet, conv3x3, conv3x3_s2\. Received: stem='conv3x3_s3'"):
        build_model(stem="conv3x3_s3")
    # 40 / 2 = 20 at stage 1: a depth-4 U-Net cannot halve it three times.
    with pytest.raises(ValueError, match=r"stem 'conv3x3_s2', `input_size` 40 gives stage 1 a side of 20"):
        build_model(input_size=40, width=4, stem="conv3x3_s2")


def test_label_smoothing_mixes_the_target_with_the_uniform_distribution():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    labels = np.array([0, 2])
    plain = SparseCategoricalCrossentropy()(labels, probabilities)
    np.testing.assert_allclose(plain, keras.losses.SparseCategoricalCrossentropy()(labels, probabilities), rtol=1e-6)
    smoothing = 0.3
    targets = np.full((2, 3), smoothing / 3) + (1 - smoothing) * np.eye(3)[labels]
    expected = -(targets * np.log(probabilities)).sum(axis=1).mean()
    np.testing.assert_allclose(SparseCategoricalCrossentropy(smoothing)(labels, probabilities), expected, rtol=1e-5)
    restored = SparseCategoricalCrossentropy.from_config(SparseCategoricalCrossentropy(smoothing).get_config())
    assert restored.label_smoothing == smoothing
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        SparseCategoricalCrossentropy(1.0)


def write_votes_for(csv_path, path, seed=0):
    """A FERPlus vote file for `csv_path`: 10 votes a row, most for its own emotion, some for another."""
    emotions, usages = [], []
    with open(csv_path) as f:
        next(f)
        for line in f:
            emotion, _, usage = line.strip().split(",")
            emotions.append(int(emotion))
            usages.append(usage)
    # FERPlus's vote column of each FER2013 class, in class order (Angry ... Neutral).
    column_of_class = [VOTE_COLUMNS.index(vote) for vote in
                       ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")]
    rng = np.random.default_rng(seed)
    lines = [",".join(FERPLUS_COLUMNS)]
    for row, (emotion, usage) in enumerate(zip(emotions, usages)):
        counts = [0] * 10
        counts[column_of_class[emotion]] = int(rng.integers(6, 11))
        counts[column_of_class[(emotion + 1) % 7]] += 10 - counts[column_of_class[emotion]]
        lines.append(f"{usage},fer{row:07d}.png,{','.join(map(str, counts))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_vote_targets_train_on_the_vote_shares_and_select_epochs_by_majority_accuracy(tmp_path):
    data = write_synthetic_fer2013(tmp_path / "fer2013.csv", {"Training": 8, "PublicTest": 6}, seed=3)
    votes = write_votes_for(data, tmp_path / "fer2013new.csv")
    _, shares = read_fer2013(data, labels="ferplus", ferplus_path=votes, targets="votes")
    assert 0.0 < (shares.max(axis=1) < 1).mean() < 1.0  # some faces unanimous, some not
    config = tiny_config(f"data.source={data}", "data.labels=ferplus", f"data.ferplus_path={votes}",
                         "data.targets=votes", "training.epochs=2", "training.time_limit_minutes=null")
    metrics = train(config, tmp_path / "run")
    history = read_history(tmp_path / "run" / "history.csv")
    model = keras.saving.load_model(tmp_path / "run" / "best.keras")
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    # The epoch was chosen on categorical accuracy against the vote shares: the majority labels' accuracy.
    best = history[metrics["best_epoch"] - 1]["val_accuracy"]
    assert metrics["validation"]["accuracy"] == pytest.approx(best, abs=1e-6)


def test_vote_targets_without_ferplus_votes_are_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="data.targets: `votes` are FERPlus's annotator votes and need data.labels "
                                          "ferplus or ferplus8"):
        load_config("configs/quickstart.yaml", ["data.targets=votes"])
    import cv2

    (tmp_path / "faces" / "happy").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "faces" / "happy" / "a.png"), np.zeros((48, 48), "uint8"))
    config = tiny_config(f"data.source={tmp_path / 'faces'}", "data.labels=ferplus8", "data.targets=votes")
    with pytest.raises(RunError, match=r"data.targets votes: .* is an image folder, whose images have one label each"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, message",
    [("training.warmup_epochs=8", r"warmup_epochs: must be at least 0 and less than training.epochs \(8\), got 8"),
     ("training.label_smoothing=1.5", r"label_smoothing: must be in \[0, 1\), got 1.5"),
     ("training.schedule=step", r"training.schedule: 'step' is not one of plateau, cosine"),
     ("model.stem=resnet", r"model.stem: 'resnet' is not one of")],
)
def test_recipe_settings_out_of_range_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/quickstart.yaml", [override])


def test_cosine_schedule_warms_up_then_decays_to_zero_at_the_last_epoch(tmp_path):
    data = write_synthetic_fer2013(tmp_path / "fer2013.csv", {"Training": 4, "PublicTest": 2}, seed=1)
    settings = [f"data.source={data}", "training.schedule=cosine", "training.warmup_epochs=1",
                "training.steps_per_epoch=2", "training.validation_steps=1", "training.label_smoothing=0.1",
                "training.optimizer.learning_rate=0.02", "training.early_stopping.patience=10"]
    train(tiny_config(*settings, "training.epochs=4", "training.time_limit_minutes=null"), tmp_path / "run")
    rates = [row["learning_rate"] for row in read_history(tmp_path / "run" / "history.csv")]
    peak, warmup, total = 0.02, 2, 8  # steps
    expected = [peak * 0.5 * (1 + math.cos(math.pi * (2 * epoch - warmup) / (total - warmup))) for epoch in (2, 3, 4)]
    np.testing.assert_allclose(rates, [peak, *expected], atol=1e-7)
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)


def test_dry_run_reports_the_cpu_recipes_cosine_schedule(tmp_path):
    data = write_synthetic_fer2013(tmp_path / "fer2013.csv", {"Training": 40, "PublicTest": 1}, seed=1)
    report = dry_run("configs/fer2013_cpu.yaml", data, tmp_path / "run")
    recipe = load_config("configs/fer2013_cpu.yaml").training
    steps_per_epoch = 7 * 40 // recipe.batch_size  # training drops the last, partial batch
    assert report["optimizer"]["learning_rate"] == pytest.approx(recipe.optimizer.learning_rate)
    assert report["schedule"] == {
        "class": "CosineDecay",
        "warmup_steps": recipe.warmup_epochs * steps_per_epoch,
        "decay_steps": (recipe.epochs - recipe.warmup_epochs) * steps_per_epoch,
        "peak": pytest.approx(recipe.optimizer.learning_rate),
    }
