"""tools/results_table.py: the README table's numbers come from the run files, nothing else."""

import importlib.util
import json
from pathlib import Path

import pytest

from keras_fer import config as config_lib

TOOL = Path(__file__).resolve().parents[1] / "tools" / "results_table.py"
spec = importlib.util.spec_from_file_location("results_table", TOOL)
results_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_table)


def write_run(root, name, accuracy, overrides=(), wall_time=3000.0, code_version="0123456789abcdef"):
    """A fake run directory: resolved config.yaml and a metrics.json shaped like training's."""
    directory = root / name
    directory.mkdir(parents=True)
    config = config_lib.load_config(None, ["model.input_size=64", "model.width=16", *overrides])
    (directory / "config.yaml").write_text(config_lib.to_yaml(config))
    names = ["Angry", "Happy"]
    metrics = {
        "best_epoch": 7,
        "best_val_accuracy": accuracy,
        "epochs_run": 11,
        "validation": {"split": "PublicTest", "accuracy": accuracy, "macro_f1": accuracy - 0.1, "num_images": 3589,
                       "per_class": {"Angry": {"recall": accuracy - 0.2}, "Happy": {"recall": accuracy + 0.2}},
                       "confusion_matrix": {"class_names": names, "counts": [[3, 1], [2, 5]]}},
        "test": {"split": "PrivateTest", "status": "absent"},
        "code_version": code_version,
        "seed": 42,
        "wall_time_seconds": wall_time,
    }
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return directory


@pytest.fixture
def ablation(tmp_path):
    write_run(tmp_path, "fer2013_cpu", 0.6543, wall_time=5280.0)
    write_run(tmp_path, "fer2013_cpu_no_masks", 0.6111, ["model.use_masks=false"], code_version="fedcba9876543210")
    write_run(tmp_path, "fer2013_cpu_no_eca", 0.6432, ["model.use_eca=false"])
    return tmp_path


def table_rows(block):
    return {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in block.splitlines() if line.startswith("| [")}


def test_rows_carry_the_figures_of_each_run(ablation):
    rows = table_rows(results_table.markdown_table(results_table.load_runs(ablation)))
    full = rows["[fer2013_cpu](results/fer2013_cpu/)"]
    assert full == ["ResNet34 + ECA-U-Net masks", "64, imagenet, 16", "11 (7)", "65.43% (PublicTest)", "0.554",
                    "78.1% (Tian et al. 2024 (this network))", "88 min", "`0123456`"]
    no_masks = rows["[fer2013_cpu_no_masks](results/fer2013_cpu_no_masks/)"]
    assert no_masks[0] == "plain ResNet34 (no masks)"
    assert no_masks[3] == "61.11% (PublicTest)" and no_masks[5] == "—" and no_masks[7] == "`fedcba9`"
    no_eca = rows["[fer2013_cpu_no_eca](results/fer2013_cpu_no_eca/)"]
    assert no_eca[0] == "masks without ECA" and no_eca[3] == "64.32% (PublicTest)"
    assert no_eca[5].startswith("74.14%")


def test_a_resumed_runs_wall_time_is_named_as_its_last_invocations(tmp_path):
    directory = write_run(tmp_path, "fer2013_cpu", 0.6543, wall_time=1800.0)
    metrics = json.loads((directory / "metrics.json").read_text())
    (directory / "metrics.json").write_text(json.dumps({**metrics, "epochs_this_invocation": 4}))
    row = table_rows(results_table.markdown_table(results_table.load_runs(tmp_path)))["[fer2013_cpu](results/fer2013_cpu/)"]
    assert row[6] == "30 min (the last 4 of 11 epochs: resumed)"


def test_ablation_sentence_is_computed_from_the_runs(ablation):
    block = results_table.markdown_table(results_table.load_runs(ablation))
    assert "Ablation of fer2013_cpu against fer2013_cpu_no_masks and fer2013_cpu_no_eca (same" in block
    assert "+4.3 points over a plain ResNet34" in block  # 65.43 - 61.11
    assert "+1.1 points over masks without it" in block  # 65.43 - 64.32
    # sqrt(0.6543 * 0.3457 / 3589) = 0.79 points; a difference's two standard errors: 2 * sqrt(2) * 0.79
    assert "is 0.8 points, so differences within about 2.2 points" in block


def test_per_class_recall_and_confusion_matrices_come_from_each_run(ablation):
    lines = results_table.markdown_table(results_table.load_runs(ablation)).splitlines()
    assert "| fer2013_cpu | 45.4% | 85.4% |" in lines  # recall of Angry, Happy
    assert "| fer2013_cpu_no_masks | 41.1% | 81.1% |" in lines
    start = lines.index("<details><summary>fer2013_cpu_no_eca: PublicTest confusion matrix "
                        "(rows true, columns predicted)</summary>")
    assert lines[start + 2:start + 6] == ["| true \\ predicted | Angry | Happy |", "| --- | --- | --- |",
                                          "| Angry | 3 | 1 |", "| Happy | 2 | 5 |"]


def test_ablation_ignores_runs_that_differ_in_more_than_the_masks(tmp_path):
    write_run(tmp_path, "full", 0.65)
    write_run(tmp_path, "plain_longer", 0.60, ["model.use_masks=false", "training.epochs=99"])
    block = results_table.markdown_table(results_table.load_runs(tmp_path))
    assert "Ablation of full: no plain-ResNet34 or no-ECA run of the same configuration yet." in block


def test_a_no_eca_run_alone_gives_the_effect_of_eca_and_names_the_missing_plain_run(tmp_path):
    write_run(tmp_path, "full", 0.65)
    write_run(tmp_path, "full_no_eca", 0.62, ["model.use_eca=false"])
    block = results_table.markdown_table(results_table.load_runs(tmp_path))
    assert ("Ablation of full against full_no_eca (same configuration and budget, PublicTest accuracy; no "
            "plain-ResNet34 run of the same configuration yet): ECA inside the masks changes accuracy by +3.0 "
            "points over masks without it.") in block


def test_mask_width_is_named_and_a_plain_run_matches_whatever_the_mask_keys_say(tmp_path):
    write_run(tmp_path, "narrow", 0.67, ["model.mask_width=0.5"])
    write_run(tmp_path, "narrow_no_eca", 0.66, ["model.mask_width=0.5", "model.use_eca=false"])
    write_run(tmp_path, "plain", 0.65, ["model.use_masks=false"])  # the default mask width, unused
    write_run(tmp_path, "wide_no_eca", 0.64, ["model.use_eca=false"])  # another mask width: not narrow's
    block = results_table.markdown_table(results_table.load_runs(tmp_path))
    rows = table_rows(block)
    assert rows["[narrow](results/narrow/)"][0] == "ResNet34 + ECA-U-Net masks (mask width 0.5)"
    assert rows["[narrow_no_eca](results/narrow_no_eca/)"][0] == "masks without ECA (mask width 0.5)"
    assert rows["[plain](results/plain/)"][0] == "plain ResNet34 (no masks)"
    assert "Ablation of narrow against plain and narrow_no_eca (same" in block
    assert "+2.0 points over a plain ResNet34" in block and "+1.0 points over masks without it" in block


def test_runs_from_before_the_mask_width_option_read_as_the_papers_masks(tmp_path):
    directory = write_run(tmp_path, "old", 0.65)
    config_path = directory / "config.yaml"
    config_path.write_text(config_path.read_text().replace("  mask_width: 1.0\n", ""))
    assert "mask_width" not in config_path.read_text()
    (run,) = results_table.load_runs(tmp_path)
    assert run["mask_width"] == 1.0 and table_rows(results_table.markdown_table([run]))["[old](results/old/)"][0] \
        == "ResNet34 + ECA-U-Net masks"


def test_readme_is_rewritten_between_the_markers_only(ablation, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{results_table.START_MARKER}\nold table\n{results_table.END_MARKER}\n\nAfter.\n")
    results_table.main(["--results", str(ablation), "--readme", str(readme)])
    text = readme.read_text()
    assert text.startswith("# Title\n\n<!-- results:start -->") and text.endswith("<!-- results:end -->\n\nAfter.\n")
    assert "old table" not in text and "65.43% (PublicTest)" in text


def test_missing_file_and_missing_markers_are_clear_errors(tmp_path, capsys):
    directory = write_run(tmp_path, "broken", 0.5)
    (directory / "config.yaml").unlink()
    (directory / "config.yaml").mkdir()  # unreadable as a file: not silently skipped
    with pytest.raises(SystemExit):
        results_table.main(["--results", str(tmp_path)])
    (directory / "config.yaml").rmdir()
    with pytest.raises(results_table.ResultsError, match="config.yaml: configuration file not found"):
        results_table.load_runs(tmp_path)
    with pytest.raises(results_table.ResultsError, match="no <!-- results:start -->"):
        results_table.replace_between_markers("no markers here", "table")


def test_runs_with_different_class_lists_are_an_error_not_a_shifted_table(ablation):
    metrics_path = ablation / "fer2013_cpu_no_eca" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["validation"]["confusion_matrix"]["class_names"] = ["Happy", "Angry"]
    metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(results_table.ResultsError, match="fer2013_cpu_no_eca: classes"):
        results_table.markdown_table(results_table.load_runs(ablation))


def test_readme_table_is_the_one_generated_from_the_committed_results():
    repo = TOOL.parents[1]
    readme = (repo / "README.md").read_text()
    block = readme[readme.index(results_table.START_MARKER):readme.index(results_table.END_MARKER)]
    expected = results_table.markdown_table(results_table.load_runs(repo / "results"))
    assert block + results_table.END_MARKER == expected, "run `python tools/results_table.py --readme README.md`"


def test_the_table_holds_one_label_mode_and_a_ferplus_run_has_its_own(ablation):
    write_run(ablation, "ferplus8_cpu", 0.8512, ["data.labels=ferplus8", "data.ferplus_path=votes.csv"])
    assert set(table_rows(results_table.markdown_table(results_table.load_runs(ablation)))) == {
        "[fer2013_cpu](results/fer2013_cpu/)", "[fer2013_cpu_no_masks](results/fer2013_cpu_no_masks/)",
        "[fer2013_cpu_no_eca](results/fer2013_cpu_no_eca/)"}
    rows = table_rows(results_table.markdown_table(results_table.load_runs(ablation, labels="ferplus8")))
    (cells,) = rows.values()
    assert list(rows) == ["[ferplus8_cpu](results/ferplus8_cpu/)"] and cells[3] == "85.12% (PublicTest)"
    assert cells[5] == "—"  # the paper's figure is FER2013's


def test_accuracy_curves_give_each_label_mode_a_panel_with_its_runs_curves(tmp_path):
    # tools/accuracy_curves.py reads the same run directories; accuracies against FER2013's and
    # FERPlus's labels must not share an axis.
    curves_spec = importlib.util.spec_from_file_location("accuracy_curves", TOOL.with_name("accuracy_curves.py"))
    accuracy_curves = importlib.util.module_from_spec(curves_spec)
    curves_spec.loader.exec_module(accuracy_curves)
    runs = {"fer2013_a": ([], [0.5, 0.6]), "fer2013_b": (["model.use_masks=false"], [0.4, 0.55, 0.61]),
            "ferplus_a": (["data.labels=ferplus8", "data.ferplus_path=votes.csv"], [0.8])}
    for name, (overrides, accuracies) in runs.items():
        directory = write_run(tmp_path / "results", name, accuracies[-1], overrides)
        rows = [f"{epoch},{accuracy},90.0" for epoch, accuracy in enumerate(accuracies)]
        (directory / "history.csv").write_text("epoch,val_accuracy,train_seconds\n" + "\n".join(rows) + "\n")
    figure = accuracy_curves.plot(tmp_path / "results", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = {axes.get_title(): axes for axes in figure.axes}
    assert list(panels) == [accuracy_curves.PANEL_TITLES["fer2013"], accuracy_curves.PANEL_TITLES["ferplus8"]]
    fer2013_lines = panels[accuracy_curves.PANEL_TITLES["fer2013"]].get_lines()
    assert [line.get_label().split(" ")[0] for line in fer2013_lines] == ["fer2013_a", "fer2013_b"]
    assert "no masks" in fer2013_lines[1].get_label()
    # Minutes are the running sum of train_seconds; accuracies in percent.
    assert list(fer2013_lines[1].get_xdata()) == [1.5, 3.0, 4.5]
    assert list(fer2013_lines[1].get_ydata()) == pytest.approx([40.0, 55.0, 61.0])
    with pytest.raises(FileNotFoundError, match="no \\*/history.csv"):
        accuracy_curves.plot(tmp_path / "empty", tmp_path / "none.png")
