"""Knowledge distillation (`training.teacher`): targets mixed with a teacher's probabilities."""

import keras
import numpy as np
import pytest
from test_training import tiny_config

from keras_fer.config import ConfigError
from keras_fer.data import CLASS_NAMES
from keras_fer.models import build_model
from keras_fer.training import RunError, train
from keras_fer.training.teacher import distilled_targets

HAPPY = CLASS_NAMES.index("Happy")


def test_targets_mix_the_label_or_the_vote_shares_with_the_teachers_probabilities():
    teacher = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], np.float32)
    mixed = distilled_targets(np.array([2, 0]), teacher, 0.25)
    np.testing.assert_allclose(mixed, [[0.025, 0.175, 0.8], [0.875, 0.0625, 0.0625]], rtol=1e-6)
    votes = np.array([[0.0, 0.6, 0.4], [0.9, 0.1, 0.0]], np.float32)
    np.testing.assert_allclose(distilled_targets(votes, teacher, 0.5), (votes + teacher) / 2, rtol=1e-6)
    np.testing.assert_allclose(distilled_targets(np.array([2, 0]), teacher, 1.0), teacher)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("weight", ["0", "1.5", "-0.2"])
def test_a_teacher_weight_outside_0_to_1_is_refused_quoting_it(weight):
    with pytest.raises(ConfigError, match=rf"training.teacher_weight: must be in \(0, 1\] with a teacher, got "
                                          rf"{float(weight)}"):
        tiny_config("training.teacher=fer2013", f"training.teacher_weight={weight}")


def test_a_teacher_of_other_classes_or_none_at_all_is_refused_before_the_run_directory_exists(tmp_path):
    with pytest.raises(RunError, match=r"training.teacher 'ferplus' gives the classes Angry, .*, Neutral, Contempt; "
                                       r"the run's are Angry, .*, Neutral: a teacher must give the run's classes"):
        train(tiny_config("training.teacher=ferplus"), tmp_path / "run")
    with pytest.raises(RunError, match=r"training.teacher: --model .*absent.keras: no such file"):
        train(tiny_config(f"training.teacher={tmp_path / 'absent.keras'}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_student_taught_by_its_teacher_alone_gives_the_teachers_answers(tmp_path):
    """A teacher that calls every face Happy, at full weight, overrules the synthetic faces' own labels."""
    teacher = build_model(input_size=32, width=4, use_masks=False, augmentation=None)
    head = teacher.get_layer("predictions")
    head.kernel.assign(np.zeros(head.kernel.shape))
    head.bias.assign(np.where(np.arange(len(CLASS_NAMES)) == HAPPY, 6.0, 0.0))
    teacher_path = tmp_path / "teacher.keras"
    teacher.save(teacher_path)

    config = tiny_config(f"training.teacher={teacher_path}", "training.teacher_weight=1.0", "training.epochs=3",
                         "data.synthetic.train_per_class=40", "data.synthetic.validation_per_class=20",
                         "data.synthetic.test_per_class=2")
    metrics = train(config, tmp_path / "run")
    student = keras.saving.load_model(tmp_path / "run" / "best.keras")
    validation = metrics["validation"]
    # The synthetic faces are balanced: a student of their labels would call a seventh of them Happy.
    predicted = np.asarray(validation["confusion_matrix"]["counts"]).sum(axis=0)  # rows: labels, columns: predictions
    assert predicted[HAPPY] >= 0.9 * predicted.sum()
    assert validation["accuracy"] < 0.25
    assert student.loss.__class__.__name__ == "CategoricalCrossentropy"
