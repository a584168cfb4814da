"""`cardd init-data`: a description file for the COCO layouts people have."""

import json
import shutil

from click.testing import CliRunner

from cardd.cli.main import cli
from cardd.data.spec import load_data_file
from tests.support.datasets import categories, relabel


def test_the_cardd_layout_and_plain_annotations_images_folders(synthetic_root, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli, ["init-data", str(synthetic_root), "--out", str(tmp_path / "c.yaml")]
    )
    assert result.exit_code == 0, result.output
    spec = load_data_file(tmp_path / "c.yaml")
    assert spec.split("val").images.resolve() == (synthetic_root / "val2017").resolve()
    assert "6 classes: 1 dent" in result.output

    relabel(synthetic_root, tmp_path / "mine", categories(["a", "b"], [0, 1]), copy_images=True)
    (tmp_path / "mine/data.yaml").unlink()
    result = runner.invoke(cli, ["init-data", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    spec = load_data_file(tmp_path / "mine/cardd-data.yaml")
    assert list(spec.splits) == ["train", "val"]  # no test split: none is made up
    assert spec.split("train").images.resolve() == (tmp_path / "mine/images/train").resolve()
    result = runner.invoke(cli, ["init-data", str(tmp_path / "mine")])
    assert result.exit_code == 1 and "exists: pass --force" in result.output


def test_a_roboflow_coco_export(synthetic_root, tmp_path):
    export = tmp_path / "robo"
    for split, folder in (("train", "train"), ("val", "valid")):
        shutil.copytree(synthetic_root / f"{split}2017", export / folder)
        shutil.copy(
            synthetic_root / f"annotations/instances_{split}2017.json",
            export / folder / "_annotations.coco.json",
        )
    result = CliRunner().invoke(cli, ["init-data", str(export)])
    assert result.exit_code == 0, result.output
    spec = load_data_file(export / "cardd-data.yaml")
    assert (
        spec.split("val").annotations.resolve()
        == (export / "valid/_annotations.coco.json").resolve()
    )


def test_nothing_found_or_splits_that_disagree(synthetic_root, tmp_path):
    result = CliRunner().invoke(cli, ["init-data", str(tmp_path)])
    assert result.exit_code == 1 and "no COCO train split found" in result.output
    relabel(synthetic_root, tmp_path / "mine", categories(["a", "b"]), copy_images=True)
    val = tmp_path / "mine/annotations/val.json"
    coco = json.loads(val.read_text())
    coco["categories"][0]["name"] = "c"
    val.write_text(json.dumps(coco))
    result = CliRunner().invoke(cli, ["init-data", str(tmp_path / "mine")])
    assert result.exit_code == 1 and "other categories" in result.output
    assert not (tmp_path / "mine/cardd-data.yaml").exists()


def test_links_planted_in_a_downloaded_dataset_are_never_written_through(synthetic_root,
                                                                         tmp_path):  # fmt: skip
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dataset = tmp_path / "downloaded"
    shutil.copytree(synthetic_root, dataset)
    (dataset / ".cardd-data.yaml.partial").symlink_to(victim)  # the old temporary name
    (dataset / "cardd-data.yaml").symlink_to(victim)
    result = CliRunner().invoke(cli, ["init-data", str(dataset), "--force"])
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious"
    assert not (dataset / "cardd-data.yaml").is_symlink()
    assert load_data_file(dataset / "cardd-data.yaml").split("train").images.is_dir()
