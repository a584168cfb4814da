import json

import pytest

from cardd.structures.classes import (
    CATEGORIES,
    CATEGORY_IDS,
    CLASSES,
    METAINFO,
    PALETTE,
    label_to_category_id,
)


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


def test_every_dataset_gets_distinct_readable_colours_cardds_first():
    from cardd.structures.classes import _distance, _lab, default_palette, text_colour

    assert default_palette(6) == PALETTE  # CarDD's own colours are the palette's start
    assert default_palette(30)[:18] == default_palette(18)  # more classes add, never reshuffle
    assert default_palette(30) == default_palette(30)
    assert len(default_palette(1)) == 1
    for count in (3, 20, 25, 30):
        palette = default_palette(count)
        assert len(palette) == count == len(set(palette))
        labs = [_lab(c) for c in palette]
        closest = min(_distance(a, b) for i, a in enumerate(labs) for b in labs[i + 1 :])
        assert closest > 20, (count, closest)  # apart in L*a*b* (2.3 is "just noticeable")

    def luminance(rgb):
        def linear(c):
            c /= 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = (linear(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    for colour in default_palette(30):
        dark, light = sorted((luminance(colour), luminance(text_colour(colour))))
        assert (light + 0.05) / (dark + 0.05) >= 4.5, colour  # WCAG AA for text


def test_class_sets_from_coco_categories_and_model_metadata():
    from cardd.core.errors import CarddError
    from cardd.structures.classes import CARDD, ClassSet

    categories = [{"id": 7, "name": "b"}, {"id": 0, "name": "a"}]
    classes = ClassSet.from_categories(categories)
    assert classes.names == ("b", "a") and classes.ids == (7, 0)  # the file's order
    assert classes.category_id(1) == 0 and classes.name_of(7) == "b"
    assert ClassSet.from_meta(classes.meta()) == classes
    json.dumps(classes.meta())
    # files from before cardd recorded ids: CarDD's for CarDD's names, else 1..N
    assert ClassSet.from_meta({"classes": CLASSES}).ids == CATEGORY_IDS
    assert ClassSet.from_meta({"classes": ["x", "y"]}).ids == (1, 2)
    assert CARDD.difference(ClassSet.from_categories(CATEGORIES[::-1])) == (
        "the same classes in another order"
    )
    for bad, message in (
        ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "ids repeat"),
        ([{"id": 1, "name": "a"}, {"id": 2, "name": "a"}], "names repeat"),
        ([{"id": "1", "name": "a"}], "not an integer"),
        ([{"id": 1}], "has no name"),
        ([], "no `categories`"),
    ):
        with pytest.raises(CarddError, match=message):
            ClassSet.from_categories(bad, "x.json")
