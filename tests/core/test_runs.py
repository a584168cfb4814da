from pathlib import Path

from cardd.core.runs import next_run_dir


def test_new_folder_each_run_and_empty_ones_reused(tmp_path):
    assert next_run_dir(tmp_path) == tmp_path / "exp"
    (tmp_path / "exp").mkdir()
    assert next_run_dir(tmp_path) == tmp_path / "exp"  # empty: holds no results
    (tmp_path / "exp" / "summary.json").write_text("{}")
    assert next_run_dir(tmp_path) == tmp_path / "exp2"
    (tmp_path / "exp2").write_text("a file, not a folder")
    assert next_run_dir(tmp_path, stem="exp") == tmp_path / "exp3"
    assert next_run_dir(tmp_path, stem="demo") == tmp_path / "demo"


def _kind(**changes):
    from cardd.core.runs import RunKind

    settings = dict(command="thing", flag="--out", marks=frozenset({"done.json"}),
                    outputs=("done.json", "pictures", "*.png"))  # fmt: skip
    return RunKind(**{**settings, **changes})


def test_a_run_folder_is_new_numbered_or_empty(tmp_path, monkeypatch):
    """No folder given: runs/<command>/exp, exp2, ...; a given one only if free."""
    import pytest

    from cardd.core.errors import CarddUsageError

    monkeypatch.chdir(tmp_path)
    kind = _kind()
    first = kind.open(None).local
    assert first == Path("runs/thing/exp") and first.is_dir()
    (first / "done.json").write_text("{}")
    assert kind.open(None).local == Path("runs/thing/exp2")
    with pytest.raises(CarddUsageError, match="not empty.*--exist-ok.*another --out"):
        kind.open(first)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CarddUsageError, match="is a file"):
        kind.open(tmp_path / "a_file")
    with pytest.raises(CarddUsageError, match="--resume needs the --out"):
        kind.check(None, resume=True)
    with pytest.raises(CarddUsageError, match="--exist-ok replaces"):
        kind.check(first, exist_ok=True, resume=True)


def test_exist_ok_removes_only_an_earlier_runs_outputs(tmp_path):
    """--exist-ok removes what the command writes (names and patterns), nothing else, and
    only in a folder one of its runs marked: a folder cardd never wrote is never emptied."""
    import pytest

    from cardd.core.errors import CarddUsageError

    kind = _kind()
    run = tmp_path / "run"
    (run / "pictures").mkdir(parents=True)
    (run / "pictures" / "a.jpg").write_text("old picture")
    (run / "curve.png").write_text("old plot")
    (run / "done.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    (run / "claim7").mkdir()
    (run / "claim7" / "x").write_text("old claim")
    kind.open(run, exist_ok=True, also=("claim7",))
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == ["notes.txt"]
    foreign = tmp_path / "project"
    (foreign / "pictures").mkdir(parents=True)
    (foreign / "pictures" / "precious.jpg").write_text("precious")
    with pytest.raises(CarddUsageError, match="no run of `cardd thing` \\(no done.json\\)"):
        kind.open(foreign, exist_ok=True)
    assert (foreign / "pictures" / "precious.jpg").read_text() == "precious"
    kept = _kind().open(run, resume=True)  # --resume: the earlier outputs stay
    assert kept.local == run and (run / "notes.txt").exists()


def test_the_options_are_saved_beside_the_results(tmp_path):
    import json
    from dataclasses import dataclass

    from cardd.core.runs import save_options

    @dataclass
    class Opts:
        inputs: tuple = ("a.jpg", "b/")
        out: Path = Path("runs/x")
        threshold: float = 0.3

    save_options(tmp_path, Opts(), device="cpu")
    assert json.loads((tmp_path / "options.json").read_text()) == {
        "inputs": ["a.jpg", "b/"], "out": "runs/x", "threshold": 0.3, "device": "cpu",
    }  # fmt: skip
