"""cardd.openmmlab.startup: where the seconds before the first training iteration go."""

import json
import pstats
import subprocess
import sys
import time

import pytest

from cardd.openmmlab.startup import StartupTimeline

#: The phases of a `cardd train` run, in order (cardd.train.runner and CarddStartupHook mark them).
TRAIN_PHASES = [
    "config and data checks",
    "runner set-up (distributed, seed, logger)",
    "environment log",
    "visualizer and model",
    "rest of the runner (model wrapper, hooks)",
    "datasets, optimizer, evaluator",
    "weights (initialise, load, resume)",
    "first batch (data workers)",
    "first iteration",
]


def test_process_age_counts_from_the_process_start():
    code = (
        "import time; time.sleep(1)\n"
        "from cardd.openmmlab.startup import process_age; print(process_age())"
    )
    age = float(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert 1.0 <= age < 30


def test_phases_add_up_and_each_is_marked_once():
    timeline = StartupTimeline(from_process_start=False)
    timeline.mark("a")
    time.sleep(0.05)
    timeline.mark("b")
    timeline.mark("a")  # a later iteration marking again changes nothing
    names = [name for name, _ in timeline.phases()]
    assert names == ["a", "b"]
    seconds = dict(timeline.phases())
    assert seconds["b"] == pytest.approx(0.05, abs=0.04) and seconds["a"] < 0.05
    total = timeline.marks[-1][1]
    assert sum(seconds.values()) == pytest.approx(total)
    assert timeline.summary().startswith(f"start-up {total:.1f} s to the first iteration: a ")


def test_finish_writes_the_phases_and_the_profile(tmp_path):
    timeline = StartupTimeline()
    timeline.start_profile()
    sorted(range(100_000), key=lambda n: -n)
    timeline.mark("work")
    logged = []
    timeline.finish(tmp_path / "log", logged.append)
    report = json.loads((tmp_path / "log" / "startup.json").read_text())
    assert [p["phase"] for p in report["phases"]] == ["work"]
    assert report["seconds_to_first_iteration"] == pytest.approx(report["phases"][0]["seconds"])
    assert report["seconds_to_first_iteration"] > 0  # counted from the process's start
    stats = pstats.Stats(str(tmp_path / "log" / "startup.prof"))
    assert any(name == "<lambda>" for _, _, name in stats.stats)
    assert logged[0].startswith("start-up") and "cumulative" in logged[1]
    assert timeline.finished
