"""The web console (functions/console, served at / through the gateway) driven in headless Chromium.

Debian's `chromium` (`make browser` installs it) through the Playwright package; every page's
screenshot is saved under tests/output/screenshots/.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from tests.conftest import CROWD_PHOTO, SHARED_DATA, shared_data
from tests.integration.conftest import wait_for
from tests.webhook_receiver import Receiver

SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"
CHROMIUM = os.environ.get("VISIONFN_CHROMIUM", "/usr/bin/chromium")
NEU = SHARED_DATA / "defects" / "neu_det" / "images"
MESSI = "matching/opencv_samples/messi5.jpg"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium (or set VISIONFN_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-gpu",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, platform):
    """A signed-in console; any script error or refused resource (CSP) fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    tab.goto(platform.gateway + "/")
    tab.get_by_label("API key").fill(platform.key)
    tab.get_by_role("button", name="Sign in").click()
    tab.locator("#tabs").wait_for()
    yield tab
    context.close()
    # an API error answer is logged by Chromium as a failed resource: that is the console's normal path
    assert not [problem for problem in problems if "Failed to load resource" not in problem], problems


def screenshot(tab, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _ball(messi: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(messi)).crop((200, 50, 260, 110)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_console_is_static_files_with_a_strict_policy_and_the_api_still_needs_a_key(platform):
    page = requests.get(platform.gateway + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert re.findall(r'(?:src|href)="(https?:)?//', page.text) == []  # nothing from another origin
    script = requests.get(platform.gateway + "/console/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert requests.get(platform.gateway + "/console/console.css", timeout=10).headers["Content-Type"].startswith("text/css")
    for missing in ("/console/nothing.js", "/console/%2e%2e/gateway.py", "/console/../../template.yaml"):
        assert requests.get(platform.gateway + missing, timeout=10).status_code == 404, missing
    assert requests.get(platform.gateway + "/api/v1/tasks", timeout=10).status_code == 401


def test_a_wrong_key_is_refused_with_the_apis_message(browser, platform):
    tab = browser.new_page()
    tab.goto(platform.gateway + "/")
    tab.get_by_label("API key").fill("vfn_" + "x" * 43)
    tab.get_by_role("button", name="Sign in").click()
    tab.locator("#notice", has_text="The API key is not valid (unknown or revoked)").wait_for(timeout=TIMEOUT_MS)
    assert tab.locator("#tabs").is_hidden()
    screenshot(tab, "sign-in")
    tab.close()


def test_faces_a_photo_dropped_shows_before_after_and_the_count(page, platform):
    photo = shared_data(CROWD_PHOTO)
    expected = platform.http.post(f"{platform.gateway}/detect", files={"image": photo}, timeout=60).json()["total_count"]
    page.get_by_role("link", name="Faces").click()
    page.set_input_files("#face-files", files=[{"name": "crowd.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    page.get_by_label("Mode").select_option("pixelate")
    page.get_by_role("button", name="Anonymize").click()
    badge = page.locator("#face-results .faces-count").first
    badge.wait_for()
    assert badge.inner_text() == f"{expected} faces" and expected > 1
    after = page.get_by_alt_text("crowd.jpg with faces hidden")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=after.element_handle())
    assert page.get_by_alt_text("crowd.jpg before").is_visible()
    assert page.get_by_role("link", name=re.compile("Download crowd-anonymized")).is_visible()
    page.locator("#face-form .status", has_text="1 of 1 done").wait_for()
    screenshot(page, "faces")


def test_faces_a_video_becomes_a_task_followed_to_its_mp4(page):
    from tests.integration.test_face_video import _clip

    page.get_by_role("link", name="Faces").click()
    page.set_input_files("#face-files", files=[{"name": "street.mp4", "mimeType": "video/mp4", "buffer": _clip(6)}])
    page.get_by_role("button", name="Anonymize").click()
    page.locator("#face-form .status", has_text="1 of 1 done").wait_for(timeout=120_000)
    card = page.locator("#face-results article.result").first
    assert "street.mp4: done (6 of 6 frames)" in card.inner_text()
    assert card.locator("video").count() == 1
    assert card.get_by_role("link", name="Download anonymized.mp4").is_visible()


def bucket_closed_to_the_console(platform, s3, bucket) -> str | None:
    """Why the page cannot reach the bucket (None when it can): a file over the synchronous limit
    goes there straight from the browser, which the page's connect-src and the bucket's CORS must allow."""
    ticket = platform.http.post(
        f"{platform.gateway}/api/v1/uploads", json={"filename": "probe.mp4", "content_type": "video/mp4", "size": 1}, timeout=10
    ).json()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(ticket["url"]))
    reasons = []
    policy = requests.get(platform.gateway + "/", timeout=10).headers["Content-Security-Policy"]
    connect = next((part.split()[1:] for part in policy.split(";") if part.split()[:1] == ["connect-src"]), [])
    if origin not in connect and origin + "/" not in connect:
        reasons.append(f"the console's Content-Security-Policy connect-src {' '.join(connect)} does not allow the bucket {origin}")
    try:
        rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    except s3.exceptions.ClientError:
        rules = []
    if not any("*" in rule.get("AllowedOrigins", []) and {"GET", "POST"} <= set(rule.get("AllowedMethods", [])) for rule in rules):
        reasons.append(f"the bucket {bucket} has no CORS rule allowing POST and GET from any origin")
    return "; ".join(reasons) or None


def anonymize_a_video_over_the_limit(page, platform) -> None:
    """A 16 MB video through the console: sent through the bucket, its task followed to an mp4
    that is itself over the limit, so that it downloads through the 303 to the bucket."""
    from tests.integration.test_large_files import noise_video

    video = noise_video(36)
    assert len(video) > 16_000_000
    page.get_by_role("link", name="Faces").click()
    page.set_input_files("#face-files", files=[{"name": "noise.mp4", "mimeType": "video/mp4", "buffer": video}])
    page.get_by_role("button", name="Anonymize").click()
    page.locator("#face-form .status", has_text="1 of 1 done").wait_for(timeout=240_000)
    card = page.locator("#face-results article.result").first
    assert "noise.mp4: done (36 of 36 frames)" in card.inner_text()
    assert card.get_by_role("link", name="Download anonymized.mp4").is_visible()
    page.wait_for_function("video => video.readyState >= 1 && video.duration > 5", arg=card.locator("video").element_handle())
    task = platform.http.get(f"{platform.gateway}/api/v1/tasks", params={"limit": 1}, timeout=10).json()["tasks"][0]
    assert task["tool"] == "face_video" and task["result_data"]["output_bytes"] > 4_706_304
    assert (
        platform.http.get(f"{platform.gateway}/api/v1/files/{task['result_files'][0]}", allow_redirects=False, timeout=10).status_code
        == 303
    )


def test_faces_a_video_over_the_synchronous_limit_goes_through_the_bucket(page, platform, s3, bucket):
    assert bucket_closed_to_the_console(platform, s3, bucket) is None
    anonymize_a_video_over_the_limit(page, platform)


def test_matching_a_template_task_reaches_done_with_its_result_picture(page, platform, tmp_path):
    messi = shared_data(MESSI)
    platform.http.put(f"{platform.gateway}/api/v1/settings/template", json={"threshold": 0.85, "max_results": 7}, timeout=10)
    page.get_by_role("link", name="Matching").click()
    form = page.locator("#match-template")
    # pre-filled from the stored settings
    assert form.get_by_label("Threshold").input_value() == "0.85"
    assert form.get_by_label("Max Results").input_value() == "7"
    form.get_by_label("Image").set_input_files(files=[{"name": "messi5.jpg", "mimeType": "image/jpeg", "buffer": messi}])
    form.get_by_label("Template").set_input_files(files=[{"name": "ball.png", "mimeType": "image/png", "buffer": _ball(messi)}])
    form.get_by_label("Threshold").fill("0.9")
    form.get_by_role("button", name="Submit template task").click()
    page.wait_for_function("() => document.querySelector('#task-detail')?.dataset.status === 'done'", timeout=TIMEOUT_MS)
    uid = page.locator("#task-detail").get_attribute("data-uid")
    task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
    assert task["status"] == "done" and task["params"]["threshold"] == 0.9 and task["params"]["max_results"] == 7
    picture = page.get_by_alt_text("matches.png")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
    assert page.evaluate("img => img.naturalWidth", picture.element_handle()) == 548
    assert '"filtered_matches": 1' in page.locator("#task-detail pre").first.inner_text()
    # its timeline: submitted, queued, the attempt and its end, as the API records them
    page.wait_for_function("() => document.querySelectorAll('#task-timeline li[data-event]').length >= 4", timeout=TIMEOUT_MS)
    shown = page.locator("#task-timeline li").evaluate_all("items => items.map(item => item.dataset.event)")
    assert shown == ["submitted", "queued", "started", "done"]
    assert page.locator("#task-detail code").inner_text() == task["request_id"]
    # the list shows it done, with its thumbnail once the thumbnail function made it
    row = page.locator(f"#task-list li[data-uid='{uid}']")
    row.wait_for()
    wait_for(lambda: row.get_attribute("data-status") == "done", timeout=30)
    page.wait_for_function(
        "uid => document.querySelector(`#task-list li[data-uid='${uid}'] img.thumb`)?.naturalWidth > 0", arg=uid, timeout=TIMEOUT_MS
    )
    screenshot(page, "matching")


def test_matching_chain_steps_added_and_ordered_and_the_settings_editor(page, platform):
    messi = shared_data(MESSI)
    page.get_by_role("link", name="Matching").click()
    page.get_by_role("radio", name="chain").check()
    form = page.locator("#match-chain")
    form.get_by_label("Image").set_input_files(files=[{"name": "messi5.jpg", "mimeType": "image/jpeg", "buffer": messi}])
    form.get_by_label("Template").set_input_files(files=[{"name": "ball.png", "mimeType": "image/png", "buffer": _ball(messi)}])
    form.get_by_role("button", name="+ Add step").click()
    steps = form.locator("#chain-steps > li")
    wait_for(lambda: steps.count() == 2)
    steps.nth(1).get_by_label("Step tool").select_option("feature")
    steps.nth(1).get_by_label("Detector").select_option("ORB")
    steps.nth(1).get_by_role("button", name="Move step up").click()  # feature first, template second
    form.get_by_role("button", name="Submit chain task").click()
    page.wait_for_function("() => document.querySelector('#task-detail')?.dataset.status === 'done'", timeout=TIMEOUT_MS)
    uid = page.locator("#task-detail").get_attribute("data-uid")
    task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
    assert [step["tool"] for step in task["params"]["steps"]] == ["feature", "template"]
    assert task["params"]["steps"][0]["params"]["detector"] == "ORB"

    editor = page.locator("#settings-editor")
    page.get_by_text("Settings (per-tool defaults)").click()
    editor.get_by_label("Tool").select_option("feature")
    editor.get_by_label("Max Matches").fill("5000000")
    editor.get_by_role("button", name="Save").click()
    editor.locator(".status", has_text="422: body.max_matches").wait_for()
    editor.get_by_label("Max Matches").fill("321")
    editor.get_by_role("button", name="Save").click()
    wait_for(lambda: platform.http.get(f"{platform.gateway}/api/v1/settings/feature", timeout=10).json()["params"]["max_matches"] == 321)
    screenshot(page, "matching-chain")


def test_webhooks_a_registered_hook_gets_a_delivery_shown_in_the_log(page, platform):
    receiver = Receiver()
    try:
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_label("URL").fill(receiver.url + "/hook")
        page.get_by_label("Secret").fill("s3cret-for-the-test")
        page.get_by_label("Description").fill("console test")
        page.get_by_role("button", name="Add webhook").click()
        page.locator("#delivery-log").wait_for()
        messi = shared_data(MESSI)
        response = platform.http.post(
            f"{platform.gateway}/api/v1/match/template", files={"image": ("m.jpg", messi), "template": ("b.png", _ball(messi))}, timeout=30
        )
        assert response.status_code == 201
        uid = response.json()["uid"]
        delivered = page.locator("#delivery-table tr[data-state='delivered']")
        delivered.first.wait_for(timeout=TIMEOUT_MS)
        assert uid[:8] in delivered.first.inner_text()
        received = receiver.wait_for(1)
        assert received[0].path == "/hook"
        page.get_by_role("button", name="Redeliver").first.click()
        receiver.wait_for(2)
        screenshot(page, "webhooks")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#webhook-list").get_by_role("button", name="Delete").click()
        page.get_by_text("No webhook yet").wait_for()
    finally:
        receiver.shutdown()


def test_inspection_a_batch_and_the_dashboard_drawn_from_the_records(page, platform):
    images = [sorted(NEU.glob(f"{label}_*.jpg"))[1] for label in ("crazing", "patches", "scratches", "inclusion")]
    page.get_by_role("link", name="Inspection").click()
    page.set_input_files(
        "#inspect-files",
        files=[
            *({"name": path.name, "mimeType": "image/jpeg", "buffer": path.read_bytes()} for path in images),
            {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff\xe0 not really"},
        ],
    )
    page.get_by_role("button", name="Inspect").click()
    status = page.locator("#inspect-form .status")
    wait_for(lambda: "inspected" in status.inner_text(), timeout=60)
    assert status.inner_text().startswith("4 of 5 inspected")
    assert page.locator("#inspect-results figure.result:not(.failed) img").count() == 4
    assert "Invalid image data for broken.jpg" in page.locator("#inspect-results figure.failed").inner_text()

    stats = platform.http.get(f"{platform.gateway}/api/data/statByDate", timeout=10).json()
    total_records = sum(day["record_count"] for day in stats)
    chart = page.locator("#day-chart")
    wait_for(lambda: chart.get_attribute("data-records") == str(total_records), timeout=30)
    bars = page.locator("#day-chart rect.bar.records[data-value]")  # the legend's swatch has none
    values = [int(bars.nth(n).get_attribute("data-value")) for n in range(bars.count())]
    assert values == [day["record_count"] for day in stats] and sum(values) >= 4
    assert page.locator("#day-chart rect.bar.records[data-value]:not([data-value='0'])").first.bounding_box()["height"] > 10
    assert page.locator("#label-shares rect.bar").count() >= 1
    assert "records" in page.locator("#analysis-summary").inner_text()
    assert page.locator("#recent-table tbody tr").count() >= 4

    page.get_by_label("Name contains").fill(images[0].stem)
    page.get_by_role("button", name="Search").click()
    wait_for(lambda: page.locator("#search-table tbody tr").count() >= 1 and images[0].name in page.locator("#search-table").inner_text())
    assert "Page 1 of" in page.locator("#search-page").inner_text()
    screenshot(page, "inspection")


def test_the_console_fits_a_phone(browser, platform):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = context.new_page()
    tab.goto(platform.gateway + "/")
    tab.get_by_label("API key").fill(platform.key)
    tab.get_by_label("API key").press("Enter")  # the keyboard alone signs in
    tab.locator("#tabs").wait_for()
    tab.get_by_role("link", name="Matching").click()
    tab.locator("#match-template").wait_for()
    assert tab.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(tab, "phone-matching")
    context.close()
