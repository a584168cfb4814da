"""Pictures of detections: what is drawn, where, in which colours."""

import numpy as np

from cardd.structures.classes import CARDD, PALETTE
from cardd.structures.results import Detection
from cardd.visualize.draw import draw_detections, encode_image, encode_jpeg, label_layout


def _detection(label, category_id, score, box, mask_box=None, shape=(300, 400)):
    mask = None
    if mask_box is not None:
        mask = np.zeros(shape, dtype=bool)
        x1, y1, x2, y2 = mask_box
        mask[y1:y2, x1:x2] = True
    return Detection(label, category_id, score, list(map(float, box)), 0.0, 0.0, mask)


def test_masks_are_blended_in_the_class_colour_and_the_rest_is_untouched():
    image = np.full((300, 400, 3), 100, dtype=np.uint8)
    glass = _detection("glass shatter", 4, 0.9, (50, 60, 150, 160), (60, 70, 140, 150))
    out = draw_detections(image, [glass], CARDD)
    assert out.shape == image.shape and (image == 100).all()  # a copy
    r, g, b = PALETTE[3]
    inside = out[110, 100].astype(int)  # inside the mask, away from edges and label
    expected = 0.55 * 100 + 0.45 * np.array([b, g, r])
    assert np.abs(inside - expected).max() <= 2
    assert (out[250:, 250:] == 100).all()  # far from the detection: the photo itself
    assert tuple(out[60, 50]) == (b, g, r) or tuple(out[60, 51]) == (b, g, r)  # box corner


def test_labels_of_a_crowd_do_not_pile_up():
    crowd = [_detection("dent", 1, 0.9 - i * 0.01, (100 + i, 100 + i, 300, 300)) for i in range(5)]
    layout = label_layout(crowd, (600, 800))
    assert [d.score for d, _, _ in layout] == sorted((d.score for d in crowd), reverse=True)
    rects = [rect for _, rect, _ in layout]
    for i, a in enumerate(rects):
        assert 0 <= a[0] < a[2] <= 800 and 0 <= a[1] < a[3] <= 600
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    assert "dent 0.90" in layout[0][2][0]


def test_labels_grow_with_the_photo():
    one = [_detection("crack", 3, 0.5, (10, 10, 50, 50))]
    small = label_layout(one, (300, 400))[0][1]
    large = label_layout(one, (3000, 4000))[0][1]
    assert (large[3] - large[1]) > 3 * (small[3] - small[1])


def test_a_large_photo_with_many_masks():
    shape = (1512, 2016)
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    detections = [
        _detection("scratch", 2, 0.5, (x, y, x + 200, y + 150), (x, y, x + 200, y + 150), shape)
        for x in range(0, 1800, 200)
        for y in range(0, 1350, 150)
    ]
    out = draw_detections(image, detections, CARDD)
    assert out.shape == image.shape and not (out == image).all()


def test_encoding():
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    assert encode_jpeg(image)[:3] == b"\xff\xd8\xff"
    assert encode_image(image, ".PNG")[:4] == b"\x89PNG"
    assert encode_image(image, ".weird")[:4] == b"\x89PNG"


def _blend(colour_rgb, photo=100):
    r, g, b = colour_rgb
    return 0.55 * photo + 0.45 * np.array([b, g, r])


def test_where_masks_overlap_the_better_one_is_painted_once():
    image = np.full((300, 400, 3), 100, dtype=np.uint8)
    dent = _detection("dent", 1, 0.4, (20, 20, 200, 200), (30, 30, 190, 190))
    crack = _detection("crack", 3, 0.8, (100, 100, 280, 280), (110, 110, 270, 270))
    for order in ([dent, crack], [crack, dent]):  # whatever order they come in
        out = draw_detections(image, order, CARDD).astype(int)
        assert np.abs(out[150, 150] - _blend(PALETTE[2])).max() <= 2  # both: crack's, once
        assert np.abs(out[60, 60] - _blend(PALETTE[0])).max() <= 2  # dent's alone
        assert np.abs(out[240, 240] - _blend(PALETTE[2])).max() <= 2  # crack's alone


def test_more_masks_than_a_byte_can_number():
    shape = (400, 800)
    image = np.full((*shape, 3), 100, dtype=np.uint8)
    cells = [(x, y) for y in range(0, 100, 10) for x in range(0, 300, 10)][:299]
    detections = [
        _detection("dent", 1, 0.1, (x, y, x + 10, y + 10), (x + 2, y + 2, x + 8, y + 8), shape)
        for x, y in cells
    ]  # 299 dents, then the 300th mask (numbered 44 if numbers wrapped at 256)
    detections.append(
        _detection("crack", 3, 0.2, (400, 200, 700, 380), (410, 210, 690, 370), shape)
    )
    out = draw_detections(image, detections, CARDD).astype(int)
    assert np.abs(out[330, 550] - _blend(PALETTE[2])).max() <= 2
