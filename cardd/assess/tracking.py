"""Damage followed across a video's kept frames: one track per damage.

Why not mmdet's trackers (ByteTrack, OC-SORT, ...): they predict each box with a
Kalman filter tuned for 25-30 fps footage of objects that move by themselves, need
PyTorch (the onnxruntime engine and the service run without it), and assume the
next frame is a few pixels on. A walk-around is the opposite case: the damage is
still and the camera moves, and frames are half a second apart with blurred or dark
stretches skipped between them. So the motion is the camera's, measured between
the two kept frames (ORB features matched and a similarity transform fitted with
RANSAC, OpenCV), and each track's last mask is carried by it into the new frame,
where it is matched to the detections of its class by mask overlap (box overlap
where a model gives no masks), the best pairs first. A track not found for
`MAX_MISSED` kept frames, or carried out of the picture, ends.

A track keeps what a finding needs (its placements: numbers, no pixels) and its
last mask cropped to its box; so memory grows with detections, not with frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cardd.assess.claim import best_evidence

if TYPE_CHECKING:
    import numpy as np

    from cardd.assess.claim import Placement
    from cardd.detector.results import ImageResult

#: Overlap (mask IoU, or box IoU) at which a detection continues a track.
MATCH_IOU = 0.3
#: Kept frames a track may go unseen (the model missed it, something passed in front).
MAX_MISSED = 3
#: The width frames are matched at: ORB on a 640-px frame is a few milliseconds.
MOTION_WIDTH = 640
#: Feature matches that must agree on a motion before it is believed.
MIN_INLIERS = 12


@dataclass
class Motion:
    """The camera's motion between two kept frames: a 3x3 matrix taking a pixel of the
    earlier frame to the later one (None: unknown, e.g. a cut or no texture)."""

    matrix: np.ndarray | None
    inliers: int


class MotionEstimator:
    """Each kept frame's ORB features, kept until the next: the motion between them."""

    def __init__(self) -> None:
        import cv2

        self._orb = cv2.ORB_create(nfeatures=1000)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._previous = None  # (keypoints as an array, descriptors, scale)

    def next(self, image: np.ndarray) -> Motion:
        """The motion from the previous frame given to this one (identity for the first)."""
        import cv2
        import numpy as np

        height, width = image.shape[:2]
        scale = min(1.0, MOTION_WIDTH / max(width, height))
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if scale < 1:
            gray = cv2.resize(gray, (round(width * scale), round(height * scale)),
                              interpolation=cv2.INTER_AREA)  # fmt: skip
        keypoints, descriptors = self._orb.detectAndCompute(gray, None)
        points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2) / scale
        previous, self._previous = self._previous, (points, descriptors)
        if previous is None:
            return Motion(np.eye(3), 0)
        before, before_descriptors = previous
        if descriptors is None or before_descriptors is None:
            return Motion(None, 0)
        matches = self._matcher.match(before_descriptors, descriptors)
        if len(matches) < MIN_INLIERS:
            return Motion(None, len(matches))
        source = before[[m.queryIdx for m in matches]]
        target = points[[m.trainIdx for m in matches]]
        affine, inliers = cv2.estimateAffinePartial2D(
            source, target, method=cv2.RANSAC, ransacReprojThreshold=3.0
        )
        count = int(inliers.sum()) if inliers is not None else 0
        if affine is None or count < MIN_INLIERS:
            return Motion(None, count)
        return Motion(np.vstack([affine, [0.0, 0.0, 1.0]]), count)


def _box_iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _moved_box(box, matrix) -> list[float]:
    """A box carried by a motion: the bounding box of its moved corners."""
    import numpy as np

    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], dtype=np.float64)
    moved = corners @ matrix.T
    return [float(moved[:, 0].min()), float(moved[:, 1].min()),
            float(moved[:, 0].max()), float(moved[:, 1].max())]  # fmt: skip


@dataclass
class Track:
    """One damage followed across frames."""

    id: int
    damage: str
    box: list[float]  # where it is now (moved with the camera since last seen)
    mask: np.ndarray | None  # its last mask, cropped to `mask_origin`'s box
    mask_origin: tuple[int, int]  # (x, y) of that crop in the frame it was seen in
    since_seen: np.ndarray  # the motion from that frame to the current one
    placements: list[Placement] = field(default_factory=list)
    best: list[Placement] = field(default_factory=list)  # its evidence so far
    missed: int = 0

    def overlap(self, detection, shape: tuple[int, int]) -> float:
        """How well a detection in the current frame continues this track."""
        import cv2
        import numpy as np

        box_iou = _box_iou(self.box, detection.bbox_xyxy)
        if self.mask is None or detection.mask is None or box_iou == 0.0:
            return box_iou
        height, width = shape
        # the region both can cover, in the current frame
        x1 = int(max(0, min(self.box[0], detection.bbox_xyxy[0])))
        y1 = int(max(0, min(self.box[1], detection.bbox_xyxy[1])))
        x2 = int(min(width, max(self.box[2], detection.bbox_xyxy[2]) + 1))
        y2 = int(min(height, max(self.box[3], detection.bbox_xyxy[3]) + 1))
        if x2 <= x1 or y2 <= y1:
            return 0.0
        ox, oy = self.mask_origin
        crop_to_region = (
            np.array([[1, 0, -x1], [0, 1, -y1], [0, 0, 1]], dtype=np.float64)
            @ self.since_seen
            @ np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=np.float64)
        )
        carried = cv2.warpAffine(self.mask.astype(np.uint8), crop_to_region[:2], (x2 - x1, y2 - y1),
                                 flags=cv2.INTER_NEAREST).astype(bool)  # fmt: skip
        current = detection.mask[y1:y2, x1:x2]
        union = np.count_nonzero(carried | current)
        return float(np.count_nonzero(carried & current) / union) if union else 0.0


class DamageTracker:
    """The tracks of one video, frame by frame (`update`), then `tracks`."""

    def __init__(self) -> None:
        self.motion = MotionEstimator()
        self.active: list[Track] = []
        self.ended: list[Track] = []
        self.unknown_motions = 0
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        """Every track with at least one placement, in the order they began."""
        return sorted((t for t in self.ended + self.active if t.placements), key=lambda t: t.id)

    def update(self, image: np.ndarray, damage: ImageResult, placements: list[Placement]
               ) -> tuple[list[Placement], list[Placement]]:  # fmt: skip
        """One kept frame's damage (its placements in detection order): each continues a
        track or begins one. Returns the placements that are now among their track's
        evidence (`best_evidence`) and the earlier ones that no longer are: what a
        report keeps pictures of."""
        import numpy as np

        height, width = image.shape[:2]
        motion = self.motion.next(image)
        matrix = motion.matrix
        if matrix is None:  # unknown: the tracks stay where they were, overlap decides
            self.unknown_motions += 1
            matrix = np.eye(3)
        still: list[Track] = []
        for track in self.active:
            track.box = _moved_box(track.box, matrix)
            track.since_seen = matrix @ track.since_seen
            x1, y1, x2, y2 = track.box
            if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
                self.ended.append(track)  # carried out of the picture
            else:
                still.append(track)
        self.active = still
        detections = [damage.detections[p.index] for p in placements]
        pairs = sorted(
            ((track.overlap(d, (height, width)), t, k)
             for t, track in enumerate(self.active)
             for k, d in enumerate(detections) if d.label == track.damage),
            key=lambda pair: -pair[0],
        )  # fmt: skip
        taken_tracks: set[int] = set()
        assigned: dict[int, Track] = {}
        for overlap, t, k in pairs:
            if overlap < MATCH_IOU:
                break
            if t in taken_tracks or k in assigned:
                continue
            taken_tracks.add(t)
            assigned[k] = self.active[t]
        track_ids: list[int] = []
        cited: list[Placement] = []
        dropped: list[Placement] = []
        for k, detection in enumerate(detections):
            track = assigned.get(k)
            if track is None:
                track = Track(self._next_id, detection.label, list(detection.bbox_xyxy), None,
                              (0, 0), np.eye(3))  # fmt: skip
                self._next_id += 1
                self.active.append(track)
            self._seen(track, detection, (height, width))
            track.placements.append(placements[k])
            track_ids.append(track.id)
            before, track.best = track.best, best_evidence([*track.best, placements[k]])
            if any(b is placements[k] for b in track.best):
                cited.append(placements[k])
                dropped += [b for b in before if not any(b is n for n in track.best)]
        still = []
        for track in self.active:
            if track.id not in track_ids:
                track.missed += 1
                if track.missed > MAX_MISSED:
                    self.ended.append(track)
                    continue
            still.append(track)
        self.active = still
        return cited, dropped

    @staticmethod
    def _seen(track: Track, detection, shape: tuple[int, int]) -> None:
        import numpy as np

        height, width = shape
        track.box = list(detection.bbox_xyxy)
        track.missed = 0
        track.since_seen = np.eye(3)
        if detection.mask is None:
            track.mask = None
            return
        x1, y1 = max(0, int(detection.bbox_xyxy[0])), max(0, int(detection.bbox_xyxy[1]))
        x2 = min(width, int(detection.bbox_xyxy[2]) + 2)
        y2 = min(height, int(detection.bbox_xyxy[3]) + 2)
        track.mask = detection.mask[y1:y2, x1:x2].copy()
        track.mask_origin = (x1, y1)
