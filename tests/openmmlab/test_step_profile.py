"""cardd.openmmlab.step_profile: where a training iteration's time goes.

`cardd train --profile-steps`.
"""

import gzip
import json
import subprocess
import sys
import time

import pytest
import torch

from cardd.core.errors import CarddError
from cardd.openmmlab.step_profile import StepProfile, _short
from cardd.train.options import TrainOptions
from cardd.train.runner import train


def _iteration_spans(trace_path) -> dict[str, float]:
    with gzip.open(trace_path) as f:
        events = json.load(f)["traceEvents"]
    return {e["name"]: e["dur"] * 1e-6 for e in events if e.get("name", "").startswith("cardd ")}


def test_profiles_exactly_the_asked_iterations(tmp_path):
    profile = StepProfile(steps=2, after=2, cuda=False)
    weights = torch.randn(256, 256)
    ended = []
    for iteration in range(6):
        profile.iteration_started(iteration)
        time.sleep(0.3 if iteration in (1, 4) else 0.02)  # slow iterations outside the span
        for _ in range(20):
            weights = torch.tanh(weights @ weights)
        ended.append(profile.iteration_ended(iteration))
    assert ended == [False, False, False, True, False, False]
    assert 0.04 <= profile.wall_seconds < 0.3  # iterations 3 and 4 as logged, not 2 or 5

    out = profile.write(tmp_path / "log")
    assert out == tmp_path / "log" / "profile_steps.txt"
    verdict, table = out.read_text().split("\n", 1)
    assert verdict == profile.report
    assert verdict.startswith("profiled iterations 3-4: ") and "s/iter" in verdict
    assert "most CPU time: aten::" in verdict and "GPU" not in verdict
    assert "aten::mm" in table and "aten::tanh" in table
    # one span per profiled iteration on the timeline, named as mmengine's log counts them
    spans = _iteration_spans(tmp_path / "log" / "trace.json.gz")
    assert sorted(spans) == ["cardd iteration 3", "cardd iteration 4"]
    assert sum(spans.values()) == pytest.approx(profile.wall_seconds, rel=0.5)


def test_a_run_too_short_is_refused_before_it_starts():
    profile = StepProfile(steps=5, after=10, cuda=False)
    profile.check_length(16)  # iterations 11..15 exist
    with pytest.raises(CarddError, match="needs at least 15 training iterations; this run has 14"):
        profile.check_length(14)
    with pytest.raises(CarddError, match="at least 1"):
        StepProfile(steps=0, after=0, cuda=False)
    # a run resumed at iteration 400 counts from there: it profiles 411-415 as logged
    resumed = StepProfile(steps=5, after=10, cuda=False, start=400)
    assert (resumed.first, resumed.last) == (410, 414)
    resumed.check_length(415)
    with pytest.raises(CarddError, match="needs at least 15 training iterations; this run has 10"):
        resumed.check_length(410)


def test_kernel_names_are_shortened_to_what_they_are():
    assert (
        _short(
            "void at::native::(anonymous namespace)::vectorized_elementwise_kernel<4, "
            "at::native::CUDAFunctor_add<float> >(int, float*)"
        )  # fmt: skip
        == "at::native::vectorized_elementwise_kernel"
    )
    assert (
        _short("deformable_im2col_gpu_kernel(int, float const*)") == "deformable_im2col_gpu_kernel"
    )
    assert _short("Memcpy HtoD (Pageable -> Device)") == "Memcpy HtoD "
    assert len(_short("x" * 100)) == 60


@pytest.mark.slow
def test_train_profiles_steps_of_the_real_model(tmp_path, synthetic_root):
    """`cardd train --profile-steps` on the tiny DCN model: the verdict in the log, the
    table and the timeline beside it, the deformable convolution among the ops."""
    work_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "cardd", "train", "--config", "tiny_DCN_plus",
         "--data-root", str(synthetic_root), "--work-dir", str(work_dir), "--device", "cpu",
         "--max-epochs", "1", "--profile-steps", "2", "--profile-after", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (log,) = work_dir.glob("*/*.log")
    assert "profiled iterations 2-3: " in log.read_text()
    (table,) = work_dir.glob("*/profile_steps.txt")
    assert "DeformConv2dFunction" in table.read_text()  # mmcv's DCN, whichever kernels
    spans = _iteration_spans(table.parent / "trace.json.gz")
    assert sorted(spans) == ["cardd iteration 2", "cardd iteration 3"]


@pytest.mark.slow
def test_profiling_past_the_end_of_the_run_is_a_clear_error(tmp_path, synthetic_root):
    options = TrainOptions(
        config="tiny_DCN_plus", work_dir=tmp_path / "run", data_root=synthetic_root,
        device="cpu", max_epochs=1, profile_steps=2, profile_after=100,
    )  # fmt: skip
    with pytest.raises(CarddError, match="needs at least 102 training iterations; this run has 4"):
        train(options)
    assert not list((tmp_path / "run").glob("*.pth"))
