import json

from cardd.classes import CATEGORIES, CATEGORY_IDS, CLASSES, METAINFO, PALETTE, label_to_category_id


def test_the_six_cardd_classes_in_category_id_order():
    assert CLASSES == ("dent", "scratch", "crack", "glass shatter", "lamp broken", "tire flat")
    assert CATEGORY_IDS == (1, 2, 3, 4, 5, 6)
    assert CATEGORIES[3] == {"id": 4, "name": "glass shatter"}
    assert label_to_category_id(0) == 1 and label_to_category_id(5) == 6


def test_palette_is_fixed_and_distinct():
    assert len(PALETTE) == 6 == len(set(PALETTE))
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in PALETTE)
    assert METAINFO == {"classes": CLASSES, "palette": PALETTE}
    json.dumps(METAINFO)
