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
