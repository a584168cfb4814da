"""A claim from a walk-around video: frames sampled and checked, damage followed across
them, one finding per damage citing its best frames by time; `cardd assess VIDEO` and
`/v1/assess` with a video, on videos OpenCV writes here from a drawn car side."""

import json
import shutil

import cv2
import numpy as np
import pytest

from cardd.assess.claim import claim_of, frame_name, place_damage
from cardd.assess.frames import FrameSelector
from cardd.assess.rules import load_rules
from cardd.assess.tracking import DamageTracker
from cardd.detector.results import ImageResult
from cardd.structures.classes import CARDD
from cardd.structures.results import Detection
from cardd.structures.videos import UnreadableVideo, VideoReader
from tests.conftest import broken_links, run_cardd
from tests.support.videos import FRAME, make_walkaround, set_rotation

#: The sampled times of `WALK` at 2 fps and what becomes of each.
KEPT = [0.0, 1.5, 2.0, 2.5, 4.0, 4.5, 5.0, 6.5, 7.0, 7.5]
SKIPPED = {"near duplicate": 2, "too blurred": 2, "too dark": 2}  # 0.5, 1.0 | 3.0, 3.5 | 5.5, 6.0


def _detections_where_drawn(video, time: float, image) -> ImageResult:
    """What a perfect damage model says of the frame at `time`: the drawn damages, their
    masks rasterised from the drawn polygons."""
    detections = []
    for name, polygon in video.damages_at(time):
        mask = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, [polygon.round().astype(np.int32)], 1)
        (x1, y1), (x2, y2) = polygon.min(axis=0), polygon.max(axis=0)
        area = float(mask.sum())
        detections.append(Detection(name, CARDD.ids[CARDD.names.index(name)], 0.9,
                                    [float(x1), float(y1), float(x2), float(y2)], area,
                                    area / (FRAME[0] * FRAME[1]), mask.astype(bool)))  # fmt: skip
    return ImageResult(frame_name("walk.mp4", time), FRAME[0], FRAME[1], detections, "cfg",
                       "ckpt", 0.1, CARDD)  # fmt: skip


def test_frames_are_sampled_checked_and_near_duplicates_skipped(walkaround):
    with VideoReader(walkaround.path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.frames) == (640, 480, 80)
        selector = FrameSelector(reader, load_rules(), cap=120, interval=0.5)
        for frame, _, thumbnail in selector.candidates():
            selector.kept(frame, thumbnail)
    video = selector.video
    assert video.kept == KEPT and video.skipped == SKIPPED
    assert (video.frames_read, video.frames_sampled) == (80, 16)
    with VideoReader(walkaround.path) as reader:  # the cap: the first 4 usable frames
        capped = FrameSelector(reader, load_rules(), cap=4, interval=0.5)
        for frame, _, thumbnail in capped.candidates():
            capped.kept(frame, thumbnail)
    assert capped.video.kept == KEPT[:4] and capped.video.stopped.startswith("the cap of 4")


@pytest.mark.parametrize("fourcc,suffix", [("MJPG", ".avi"), ("XVID", ".avi")])
def test_every_codec_opencv_writes_here_reads_the_same(tmp_path, fourcc, suffix):
    """mp4v (the fixture) and the others OpenCV's writer has here: the same frames kept."""
    video = make_walkaround(tmp_path / f"walk{suffix}", fourcc=fourcc)
    with VideoReader(video.path) as reader:
        selector = FrameSelector(reader, load_rules(), cap=120, interval=0.5)
        for frame, _, thumbnail in selector.candidates():
            selector.kept(frame, thumbnail)
    assert selector.video.kept == KEPT and selector.video.skipped == SKIPPED


def test_each_damage_followed_across_the_frames_is_one_finding_citing_its_best_frames(
    walkaround,
):
    """Real frames, the camera's motion measured between them; damage where it was drawn.
    The pan moves the dent 60-180 px between kept frames (past the blurred second): without
    the motion its boxes would barely overlap and it would be three findings."""
    rules = load_rules()
    tracker = DamageTracker()
    with VideoReader(walkaround.path) as reader:
        selector = FrameSelector(reader, rules, cap=120, interval=0.5)
        for frame, check, thumbnail in selector.candidates():
            selector.kept(frame, thumbnail)
            damage = _detections_where_drawn(walkaround, frame.time, frame.image)
            placements = place_damage(damage.image, damage, None, rules, check.sharpness,
                                      "walk.mp4", frame.time)  # fmt: skip
            tracker.update(frame.image, damage, placements)
    video = selector.video
    claim = claim_of([], rules, None, False, [(video, [t.placements for t in tracker.tracks])])
    assert tracker.unknown_motions == 0, "the camera motion between kept frames is measured"
    seen = {f.damage: f for f in claim.findings}
    assert sorted(seen) == ["dent", "lamp broken", "scratch"] and len(claim.findings) == 3
    for name, finding in seen.items():
        times = [t for t in KEPT if name in dict(walkaround.damages_at(t))]
        assert finding.video.frames == len(times) >= 3
        assert (finding.video.first, finding.video.last) == (times[0], times[-1])
        cited = [e.time for e in finding.evidence]
        assert len(cited) == 3 and set(cited) <= set(times) and cited == sorted(cited)
        assert all(e.source == "walk.mp4" and e.photo == frame_name("walk.mp4", e.time)
                   for e in finding.evidence)  # fmt: skip
    # the zoom makes the scratch largest in the last frames: those are its evidence
    assert [e.time for e in seen["scratch"].evidence] == [6.5, 7.0, 7.5]
    document = claim.to_dict()
    assert document["format"] == 2 and document["frames_kept"] == len(KEPT)
    assert document["findings"][0]["evidence"][0]["time"] in KEPT


def test_a_broken_file_is_one_line(tmp_path, walkaround):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(UnreadableVideo, match="notes.mp4: not a video OpenCV can decode"):
        VideoReader(text)
    avi = make_walkaround(tmp_path / "walk.avi", fourcc="MJPG")  # readable when cut short
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.path.read_bytes()[: avi.path.stat().st_size // 2])
    with pytest.raises(UnreadableVideo, match=r"cut.avi: ends at frame \d+ of the 80"):
        with VideoReader(cut) as reader:
            for _ in reader.sampled(0.5):
                pass
    with pytest.raises(UnreadableVideo, match="8 s long, over the limit of 5 s"):
        VideoReader(walkaround.path, max_seconds=5)
    with pytest.raises(UnreadableVideo, match="640x480 frames are over the limit of 1000"):
        VideoReader(walkaround.path, max_pixels=1000)


def test_a_phone_videos_rotation_is_applied(tmp_path, walkaround):
    portrait = tmp_path / "portrait.mp4"
    shutil.copy(walkaround.path, portrait)
    set_rotation(portrait, 90)
    with VideoReader(portrait) as reader:
        assert reader.info.rotation == 90 and (reader.info.width, reader.info.height) == (480, 640)
        first = next(reader.sampled(0.5)).image
    with VideoReader(walkaround.path) as reader:
        upright = next(reader.sampled(0.5)).image
    assert first.shape == (640, 480, 3)
    assert np.abs(first.astype(int) - np.rot90(upright, -1).astype(int)).mean() < 2


@pytest.mark.slow
def test_cardd_assess_a_video_and_photos_as_one_claim(tiny_export, synthetic_root, walkaround,
                                                      tmp_path):  # fmt: skip
    """The tiny models (the damage model standing in as parts model): the frames' tally,
    findings citing kept frames by time, the report's strip; then a broken video."""
    photo = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    out = tmp_path / "claim"
    result = run_cardd(
        "assess", walkaround.path, photo, "--damage-model", tiny_export, "--parts-model",
        tiny_export, "--device", "cpu", "--out-dir", out, "--score-thr", "0.05",
        "--parts-score-thr", "0.05",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claim = json.loads((out / "claim.json").read_text())
    (video,) = claim["videos"]
    assert (video["frames_read"], video["frames_sampled"], video["rotation"]) == (80, 16, 0)
    assert video["kept"] == KEPT and video["skipped"] == SKIPPED
    assert claim["photos_total"] == 1 and claim["frames_kept"] == len(KEPT)
    tracked = [f for f in claim["findings"] if f["video"]]
    assert tracked and video["tracks"] == len(tracked)
    for finding in tracked:
        cited = [e for e in finding["evidence"] if e["time"] is not None]
        assert 1 <= len(cited) <= 3 <= finding["video"]["frames"] or len(cited) == finding[
            "video"]["frames"]  # fmt: skip
        assert {e["time"] for e in cited} <= set(KEPT)
        assert finding["video"]["first"] <= min(e["time"] for e in cited)
    # fewer findings than detections: the same damage across frames is one
    assert len(tracked) < sum(f["detections"] for f in tracked)
    assert f"{video['name']}: 80 frames read, 16 sampled" in result.stdout
    page = (out / "claim.html").read_text()
    assert "walk.mp4" in page and not broken_links(out / "claim.html")
    assert len(list((out / "frames").glob("*.jpg"))) == len(KEPT)
    rows = (out / "claim.csv").read_text().splitlines()
    assert rows[0].endswith("video,first,last") and len(rows) == len(claim["findings"]) + 1

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(walkaround.path.read_bytes()[:20_000])
    refused = run_cardd("assess", broken, "--damage-model", tiny_export, "--device", "cpu",
                        "--out-dir", tmp_path / "refused")  # fmt: skip
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].endswith(
        "broken.mp4: not a video OpenCV can decode (or truncated)"
    )
    assert not (tmp_path / "refused").exists()

    # a folder of claims: a video claim, and one whose video ends early (decoded half-way)
    claims = tmp_path / "claims"
    for claim in ("c1", "c2"):
        (claims / claim).mkdir(parents=True)
    shutil.copy(walkaround.path, claims / "c1" / "walk.mp4")
    avi = make_walkaround(claims / "c2" / "walk.avi", fourcc="MJPG")
    avi.path.write_bytes(avi.path.read_bytes()[: avi.path.stat().st_size // 2])
    result = run_cardd(
        "assess", "--claims", claims, "--damage-model", tiny_export, "--device", "cpu",
        "--out-dir", tmp_path / "claims_out", "--max-frames", "4",
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "c2: failed: c2/walk.avi: ends at frame " in result.stderr
    assert "of the 80 its header declares" in result.stderr
    rows = [r.split(",") for r in (tmp_path / "claims_out" / "claims.csv").read_text().splitlines()]
    assert rows[0][8] == "frames_kept" and rows[1][0] == "c1" and 0 < int(rows[1][8]) <= 4
    assert rows[2][:2] == ["c2", "failed"]


@pytest.mark.slow
def test_the_service_assesses_a_video_as_the_command_does(tiny_export, walkaround, tmp_path):
    import requests

    from tests.assess.test_assess import _by_basename
    from tests.support import live_service

    out = tmp_path / "cli"
    result = run_cardd(
        "assess", walkaround.path, "--damage-model", tiny_export, "--device", "cpu",
        "--out-dir", out, "--score-thr", "0.05", "--max-frames", "6",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from_cli = json.loads((out / "claim.json").read_text())
    video = ("video", ("walk.mp4", walkaround.path.read_bytes(), "video/mp4"))
    with live_service.running(
        tiny_export, tmp_path / "serve.log", "--max-frames", "6", "--max-video-seconds", "60",
        config=None,
    ) as service:  # fmt: skip
        answer = requests.post(f"{service.url}/v1/assess?score_thr=0.05", files=[video],
                               timeout=120)  # fmt: skip
        assert answer.status_code == 200, answer.text
        two = requests.post(f"{service.url}/v1/assess", files=[video, video], timeout=60)
        assert two.status_code == 400 and "one video per claim" in two.json()["error"]
        text = ("video", ("notes.mp4", b"not a video", "video/mp4"))
        bad = requests.post(f"{service.url}/v1/assess", files=[text], timeout=60)
        assert bad.status_code == 400 and "not a video OpenCV can decode" in bad.json()["error"]
    with live_service.running(
        tiny_export, tmp_path / "serve2.log", "--max-video-seconds", "5", config=None
    ) as service:
        long = requests.post(f"{service.url}/v1/assess", files=[video], timeout=60)
        assert long.status_code == 413 and "over the limit of 5 s" in long.json()["error"]
    # 6 frames for 8 s: sampled every 1.33 s so that they reach the end
    video = from_cli["videos"][0]
    assert video["interval"] == 1.333 and 0 < len(video["kept"]) <= 6 and video["kept"][-1] > 6
    assert _by_basename(answer.json()) == _by_basename(from_cli)
