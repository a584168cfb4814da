"""The web page (cardd/serve/web/) in a real browser: headless Chromium driven by Playwright."""

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cardd.structures.classes import CLASSES, PALETTE

pytestmark = pytest.mark.slow

#: Screenshots land here, for people to look at (not committed).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _chromium() -> str:
    for candidate in (os.environ.get("CARDD_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise RuntimeError("no chromium: run `make browser` (scripts/setup/install_browser.sh)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def test_upload_a_photo_see_it_annotated_filter_and_download(
    browser, service, synthetic_root, walkaround, tmp_path
):
    photo = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{service.url}/")
    page.wait_for_function("document.querySelector('#model').textContent.includes('cpu')")
    # the legend names the model's classes in their colours
    assert page.locator("#legend li").all_inner_texts() == list(CLASSES)
    swatch = (
        page.locator("#legend .swatch").nth(3).evaluate("s => getComputedStyle(s).backgroundColor")
    )
    assert swatch == "rgb({}, {}, {})".format(*PALETTE[3])
    page.set_input_files("#files", str(photo))
    page.wait_for_selector(".result .download:not([hidden])", timeout=120_000)
    canvas = page.locator(".result canvas")
    size = canvas.evaluate("c => [c.width, c.height]")
    assert size == list(Image.open(photo).size)
    assert page.locator(".result .name").inner_text() == photo.name

    # the slider filters without another upload, and redraws
    pixels = "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if "/v1/" in r.url else None)
    page.locator("#threshold").fill("0")
    everything = page.locator(".result tbody tr").count()
    assert everything > 0
    page.locator("#threshold").fill("1")
    assert page.locator(".result tbody tr").count() == 0
    bare = canvas.evaluate(pixels)
    page.locator("#threshold").fill("0.05")
    some = page.locator(".result tbody tr").count()
    assert 0 < some <= everything and not uploads
    drawn = canvas.evaluate(pixels)
    assert sum(a != b for a, b in zip(bare, drawn, strict=True)) > 100  # masks, boxes
    first_row = page.locator(".result tbody tr").first.inner_text()
    assert any(name in first_row for name in CLASSES)

    with page.expect_download() as download:
        page.locator(".result .download").click()
    saved = tmp_path / "download.json"
    download.value.save_as(saved)
    document = json.loads(saved.read_text())
    assert document["image"] == photo.name and len(document["detections"]) == some
    assert document["score_thr"] == 0.05

    # the claim view: every photo shown, assessed as one claim (POST /v1/assess)
    assert page.locator("#assess").inner_text() == "Assess 1 photo as one claim"
    page.locator("#assess").click()
    page.wait_for_function(
        "document.querySelector('#claim-status').textContent.startsWith('claim ')", timeout=120_000
    )
    status = page.locator("#claim-status").inner_text()
    assert status.startswith("claim rejected: 0 findings, 0 of 1 photos usable")  # 320 px: small
    assert "relative to the photo (no parts model)" in status
    assert page.locator("#retakes li").all_inner_texts() == [
        f"retake {photo.name}: too small (256x320, shorter side under 480)"
    ]

    # a walk-around video joins the claim: not detected alone, its frames assessed with it
    page.set_input_files("#files", str(walkaround.path))
    assert "a walk-around video" in page.locator(".result .status").first.inner_text()
    assert page.locator("#assess").inner_text() == "Assess 1 photo and the video as one claim"
    page.locator("#assess").click()
    page.wait_for_function(
        "document.querySelector('#claim-status').textContent.includes('video frames used')",
        timeout=180_000,
    )
    assert ", 10 of 16 video frames used" in page.locator("#claim-status").inner_text()
    assert any(line.startswith("walk.mp4: 80 frames read, 10 used; skipped ")
               for line in page.locator("#retakes li").all_inner_texts())  # fmt: skip

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)
    assert not errors, errors


def test_the_claim_report_opens_with_every_picture(browser, tmp_path):
    """claim.html from disk in Chromium: every evidence crop and photo loads, links resolve."""
    from cardd.assess.claim import assess_claim, assess_photo
    from cardd.assess.rules import load_rules
    from cardd.structures.classes import CARDD
    from cardd.visualize.report import ClaimPictures, write_claim_report
    from tests.assess.test_assess import _detection, _parts, _photo, _result
    from tests.conftest import broken_links

    photos = [
        (f"p{k}.jpg", _photo(k), _result(f"p{k}.jpg", CARDD, [
            _detection(CARDD, "dent", 0.8, (100, 100, 300, 250)),
            _detection(CARDD, "scratch", 0.3, (450, 50, 700, 90)),
        ]), _parts(f"p{k}.jpg"))
        for k in range(3)
    ]  # fmt: skip
    claim = assess_claim(photos, load_rules())
    (tmp_path / "claim.json").write_text(json.dumps(claim.to_dict()))  # as cardd assess writes
    (tmp_path / "claim.csv").write_text(claim.csv_text())
    pictures = ClaimPictures(CARDD)  # made photo by photo, as assess_images does
    for name, image, damage, parts in photos:
        pictures(name, image, damage, parts, assess_photo(name, image, damage, parts,
                                                          load_rules())[1])  # fmt: skip
    page_path = write_claim_report(tmp_path, claim, pictures)
    assert not broken_links(page_path)
    page = browser.new_page(viewport={"width": 1100, "height": 6000})  # lazy images: all in view
    page.goto(page_path.as_uri())
    every_image = "() => [...document.images].map(i => i.complete && i.naturalWidth > 0)"
    try:  # lazy images load after the page's load event
        page.wait_for_function(f"({every_image})().every(Boolean)", timeout=30_000)
    finally:
        loaded = page.evaluate(every_image)
    assert len(loaded) == 6 and all(loaded), loaded  # 3 photos' crops of 2 findings
    assert page.locator("h1").inner_text() == "Claim: needs_review"
    assert page.locator("table").first.locator("tr").count() == 1 + len(claim.findings)


def test_a_busy_service_is_waited_for_not_shown_as_an_error(browser, service, synthetic_root):
    """A 503 (a full waiting room) is retried after its Retry-After: the photo arrives."""
    photo = sorted((synthetic_root / "test2017").glob("*.jpg"))[0]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{service.url}/")
    page.wait_for_function("document.querySelector('#model').textContent.includes('cpu')")
    busy = []

    def first_busy(route):
        if not busy:
            busy.append(route.request.url)
            route.fulfill(status=503, headers={"Retry-After": "1"},
                          content_type="application/json", body='{"error": "busy"}')
        else:
            route.continue_()

    page.route("**/v1/detect*", first_busy)
    page.set_input_files("#files", str(photo))
    page.wait_for_selector(".result .download:not([hidden])", timeout=120_000)
    assert len(busy) == 1 and page.locator(".result tbody tr").count() >= 0
    assert "busy" not in page.locator(".result").first.inner_text()
