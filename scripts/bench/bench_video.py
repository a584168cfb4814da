"""What a walk-around video costs `cardd assess`: frames read per second, frames kept,
model calls per minute of video, wall time and peak memory, on this machine's CPU.

A one-minute 1080p video at 30 fps is filmed from the tests' drawn car side
(`tests/support/videos.py`; `film` says how it moves), then each model runs
`assess_video` over it in a fresh process
(random weights with mmdet's initialisation, `bench_infer.random_checkpoint`: the
models' time is a trained model's; they find nothing, so no damage is followed).
RTMDet_ins_s and DCN_plus are run until `--dcn-frames` frames are kept (the first
call, which warms up, left out) and their time per minute is those calls' average
times the calls a minute makes (the tiny model's run: the same frames are kept).

    python scripts/bench/bench_video.py                  # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from bench_infer import random_checkpoint  # noqa: E402


def film(path: Path, seconds: float, size: tuple[int, int], fps: float) -> float:
    """A walk-around's pace: the view moves a quarter of the frame per second (the drawn
    side is passed back and forth, 4 s a pass), held still 2 s after every other pass,
    every third pass blurred (a hurried sweep) and every fifth dark."""
    from tests.support.videos import Shot, make_walkaround

    shots, filmed, passes = [], 0.0, 0
    while filmed < seconds:
        start, end = ((0, 800), (800, 800)) if passes % 2 == 0 else ((800, 800), (0, 800))
        blur, dark = passes % 3 == 2, passes % 5 == 4
        length = min(4.0, seconds - filmed)
        shots.append(Shot(length, start, end, blur=blur, dark=dark))
        filmed += length
        if passes % 2 == 1 and filmed < seconds:
            hold = min(2.0, seconds - filmed)
            shots.append(Shot(hold, start, start))
            filmed += hold
        passes += 1
    began = time.perf_counter()
    make_walkaround(path, shots, fps=fps, size=size)
    return time.perf_counter() - began


class _Enough(Exception):
    """Stops a run once it has kept the frames it was given."""


def worker(config: str, checkpoint: str, video: str, keep: int) -> None:
    """One model over the video (until `keep` frames are kept, 0: all); prints a JSON line."""
    import torch

    torch.set_num_threads(2)
    from cardd.assess.frames import Sampling
    from cardd.assess.pipeline import assess_video
    from cardd.detector.predictor import DamageDetector
    from cardd.structures.videos import VideoReader

    if config == "decode":
        began = time.perf_counter()
        with VideoReader(video) as reader:
            for _ in reader.sampled(1e9):
                pass
            read = reader.frames_read
        print(json.dumps({"frames_read": read, "seconds": time.perf_counter() - began}))
        return
    detector = DamageDetector(config, checkpoint, "cpu", trust_checkpoint=True)
    calls = []
    detect = detector.detect

    def counted(*args, **kwargs):
        began = time.perf_counter()
        result = detect(*args, **kwargs)
        calls.append(time.perf_counter() - began)
        return result

    detector.detect = counted
    seen = []

    def progress(video) -> None:
        seen[:] = [video]
        if keep and len(video.kept) >= keep:
            raise _Enough

    began = time.perf_counter()
    try:
        assess_video(detector, video, sampling=Sampling(), on_progress=progress)
    except _Enough:
        pass
    took = time.perf_counter() - began
    (summary,) = seen
    timed = calls[1:] if keep else calls  # a partial run: without the warm-up call
    print(json.dumps({
        "seconds": took, "frames_read": summary.frames_read,
        "sampled": summary.frames_sampled, "kept": len(summary.kept),
        "skipped": summary.skipped, "calls": len(calls),
        "call_s": sum(timed) / max(1, len(timed)),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


def run(config: str, checkpoint: Path | str, video: Path, max_frames: int) -> dict:
    command = [sys.executable, __file__, "--worker", config, str(checkpoint), str(video),
               str(max_frames)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--dcn-frames", type=int, default=8)
    parser.add_argument("--tiny-only", action="store_true",
                        help="only the tiny model (peak memory against the video's length)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        config, checkpoint, video, max_frames = args.worker
        worker(config, checkpoint, video, int(max_frames))
        return
    width, height = (int(v) for v in args.size.split("x"))
    minutes = args.seconds / 60
    with tempfile.TemporaryDirectory(prefix="cardd-bench-video-") as tmp:
        folder = Path(tmp)
        video = folder / "walk.mp4"
        took = film(video, args.seconds, (width, height), args.fps)
        print(f"filmed {args.seconds:g} s of {args.size} at {args.fps:g} fps in {took:.0f} s "
              f"({video.stat().st_size / 1e6:.0f} MB)", flush=True)  # fmt: skip
        decoded = run("decode", "-", video, 0)
        rate = decoded["frames_read"] / decoded["seconds"]
        print(f"decoding alone: {decoded['frames_read']} frames in {decoded['seconds']:.1f} s, "
              f"{rate:.0f} frames/s", flush=True)  # fmt: skip
        print("\n| model | frames read/s | sampled | kept | model calls per minute | "
              "s per call | s per minute of video | peak MB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        calls_per_minute = 0.0
        models = (("tiny_DCN_plus", 0), ("RTMDet_ins_s", args.dcn_frames),
                  ("DCN_plus", args.dcn_frames))  # fmt: skip
        for config, keep in models[:1] if args.tiny_only else models:
            checkpoint = random_checkpoint(config, folder / f"{config}.pth")
            result = run(config, checkpoint, video, keep)
            if not keep:  # the whole video
                calls_per_minute = result["calls"] / minutes
                whole = result["seconds"] / minutes
            else:  # its first frames only: their time per call, at the whole video's calls
                whole = calls_per_minute * result["call_s"]
            per_minute = calls_per_minute
            read_rate = result["frames_read"] / result["seconds"]
            print(f"| {config} | {read_rate:.0f} | {result['sampled']} | {result['kept']} "
                  f"| {per_minute:.0f} | {result['call_s']:.2f} | {whole:.0f} | "
                  f"{result['peak_mb']:.0f} |", flush=True)  # fmt: skip
            print(f"  skipped: {result['skipped']}", flush=True)


if __name__ == "__main__":
    main()
