import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardd.cli.main import cli

pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--epochs", "1", "--images", "6"])
    assert result.exit_code == 0, result.output
    assert "not a damage detector" in result.output and "cardd download-weights" in result.output
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and "bbox" in metrics
    summary = json.loads((out / "infer" / "summary.json").read_text())
    assert summary["images_processed"] == metrics["images"] == 2
    assert len(list((out / "infer" / "vis").rglob("*.jpg"))) == 2
    assert summary["score_thr"] == 0.1  # the toy model's scores stay low
    # every file the demo names exists: curves, report, index
    named = [line.split()[-1] for line in result.output.splitlines() if line.startswith("  ")]
    files = [Path(p) for p in named if p.endswith((".png", ".html", ".json"))]
    assert len(files) == 4 and all(f.is_file() for f in files), files
