"""Files that survive a crash: a failing write keeps the previous file, and the run resumes."""

import errno
import os

import keras
import pytest
from test_training import tiny_config

from keras_fer import files
from keras_fer.data import write_synthetic_fer2013
from keras_fer.training import read_history, train


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failing_write_keeps_the_previous_file_and_leaves_no_partial(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    files.write_text(path, '{"accuracy": 0.5}')
    monkeypatch.setattr(files.os, "fsync", disk_full)  # the data is written, then the disk is full
    with pytest.raises(files.FileWriteError, match=r"metrics\.json: could not be written \(No space left on device\); "
                                                   r"the previous file is intact"):
        files.write_text(path, '{"accuracy": 0.7}')
    assert path.read_text() == '{"accuracy": 0.5}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    with pytest.raises(files.FileWriteError, match=r"new\.bin: could not be written .*; nothing was written"):
        files.write_bytes(tmp_path / "new.bin", b"\0")
    assert not (tmp_path / "new.bin").exists()


def test_a_directory_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "1"
    with files.replaced_on_success(target) as partial:
        partial.mkdir()
        (partial / "saved_model.pb").write_text("first")
    with pytest.raises(RuntimeError):
        with files.replaced_on_success(target) as partial:
            partial.mkdir()
            (partial / "saved_model.pb").write_text("half")
            raise RuntimeError("killed in the middle")
    assert (target / "saved_model.pb").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_a_checkpoint_that_fails_to_save_keeps_the_last_good_one_and_the_run_resumes(tmp_path, monkeypatch):
    data = write_synthetic_fer2013(tmp_path / "fer2013.csv", {"Training": 4, "PublicTest": 2}, seed=1)
    config = tiny_config(f"data.source={data}", "training.epochs=3", "training.steps_per_epoch=2",
                         "training.validation_steps=1", "training.early_stopping.patience=10")
    run = tmp_path / "run"
    real_save = keras.Model.save
    saves = []

    def save_then_fill_the_disk(model, filepath, *args, **kwargs):
        saves.append(os.path.basename(filepath))
        if len(saves) == 3:  # epoch 2's first checkpoint: half a file, then the disk is full
            with open(filepath, "wb") as file:
                file.write(b"PK\x03\x04 half a zip archive")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(model, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save_then_fill_the_disk)
    with pytest.raises(files.FileWriteError, match=r"run/(best|last)\.keras: could not be written \(No space left"):
        train(config, run)
    assert saves[:2] == ["best.partial.keras", "last.partial.keras"]  # written under temporary names
    assert not list(run.glob("*.partial.*"))
    assert len(read_history(run / "history.csv")) == 1
    for name in ("best.keras", "last.keras"):
        assert keras.saving.load_model(run / name).name == "keras_fer"  # epoch 1's files, whole

    monkeypatch.setattr(keras.Model, "save", real_save)
    metrics = train(config, run)  # the same run again: resumes from epoch 2
    assert [int(row["epoch"]) for row in read_history(run / "history.csv")] == [0, 1, 2]
    assert metrics["epochs_this_invocation"] == 2 and metrics["epochs_run"] == 3
