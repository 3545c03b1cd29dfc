"""The web page in headless Chromium (Debian's, driven by Playwright) against the real service."""

from __future__ import annotations

import re
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from client_support import CLIP_FRAMES, REGIONS, frame_count, live_service, make_marked_clip, repository_for_tests
from service_support import running_app, test_settings

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@asynccontextmanager
async def browser_page():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("chromium is missing: run scripts/install-system-deps.sh (make test does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            await browser.close()


async def test_upload_through_the_page_and_download_the_clean_video(tmp_path, triton_factory, request):
    from playwright.async_api import expect

    repository = repository_for_tests(request, tmp_path)
    clip = make_marked_clip(tmp_path / "clip.mp4")
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"plain text, not a video\n" * 100)
    async with live_service(tmp_path, triton_factory, repository) as app, browser_page() as (page, errors):
        await page.goto(app.url)
        await expect(page.locator("#readiness")).to_have_text("Models ready", timeout=15_000)
        assert await page.locator("#auth").is_hidden()  # no API_KEY: no key asked

        # Two files at once: the clip and a text file named .mp4 (its task must fail, clearly).
        await page.get_by_label("Video files").set_input_files([str(clip), str(junk)])
        await expect(page.locator("#selected li").first).to_have_text("clip.mp4 (" + _size(clip) + ")")
        await page.get_by_text("Advanced options").click()
        await page.get_by_label("Regions (JSON)").fill(REGIONS)
        await page.get_by_label("Method").select_option("inpaint")
        await page.get_by_role("button", name="Remove watermark").click()

        await expect(page.locator(".task")).to_have_count(2)
        bad = page.locator(".task", has_text="notes.mp4")
        await expect(bad.locator(".task-status")).to_have_text("Failed", timeout=120_000)
        await expect(bad.get_by_role("alert")).to_contain_text("not a video")
        task = page.locator(".task", has_text="clip.mp4")
        await expect(task).to_have_attribute("data-status", "finished", timeout=180_000)
        await expect(task).to_have_attribute("data-result", "ready", timeout=30_000)
        bar = task.get_by_role("progressbar")
        await expect(bar).to_have_attribute("aria-valuenow", "100")
        await expect(bar).to_have_attribute("aria-label", "Progress of clip.mp4")
        await expect(task.locator(".task-status")).to_have_text(re.compile(r"^Finished"))
        # Before/after side by side: both videos have a source and the result decodes in Chromium.
        await expect(task.locator(".compare")).to_be_visible()
        for video in (task.locator(".before video"), task.locator(".after video")):
            # Show the same frame in both (the screenshot then compares them).
            await video.evaluate("""v => new Promise(ok => {
                const seek = () => { v.addEventListener('seeked', ok, {once: true}); v.currentTime = 1.0; };
                v.readyState >= 1 ? seek() : v.addEventListener('loadedmetadata', seek, {once: true});
            })""")
        assert await task.locator(".after video").evaluate("v => v.videoWidth") == 192
        assert (await task.locator(".before video").get_attribute("src") or "").startswith("blob:")

        async with page.expect_download() as info:
            await task.get_by_role("link", name="Download clip.clean.mp4", exact=False).click()
        download = await info.value
        assert download.suggested_filename == "clip.clean.mp4"
        saved = tmp_path / "downloaded.mp4"
        await download.save_as(saved)
        assert frame_count(saved) == CLIP_FRAMES

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "web-page-finished.png"), full_page=True)
        assert errors == []


async def test_page_asks_for_the_key_once_and_shows_the_queue(tmp_path):
    """API_KEY set and no Triton (models never load): the key is asked, kept, and tasks wait queued."""
    from playwright.async_api import expect

    clip = make_marked_clip(tmp_path / "a.mp4", frames=4)
    settings = test_settings(tmp_path, api_key="letmein")
    async with running_app(settings) as app, browser_page() as (page, errors):
        await page.goto(app.url)
        await expect(page.locator("#readiness")).to_contain_text("Models loading")
        key_form = page.locator("#auth")
        await expect(key_form).to_be_visible()

        await page.get_by_role("textbox", name="API key").fill("wrong")
        await page.get_by_role("button", name="Save key").click()
        await expect(page.locator("#auth-error")).to_have_text("The API key was rejected.")
        await page.get_by_role("textbox", name="API key").fill("letmein")
        await page.get_by_role("textbox", name="API key").press("Enter")
        await expect(key_form).to_be_hidden()

        # Two uploads queue behind each other while the models are not ready: one picked with
        # the keyboard (Enter on the drop zone opens the file chooser), one dropped on the zone.
        async with page.expect_file_chooser() as chooser:
            await page.locator("#dropzone").focus()
            await page.keyboard.press("Enter")
        await (await chooser.value).set_files(str(clip))
        await page.get_by_role("button", name="Remove watermark").click()
        await page.locator("#dropzone").evaluate("""(zone, bytes) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], "dropped.mp4", {type: "video/mp4"}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", list(clip.read_bytes()))
        await expect(page.locator("#selected li")).to_contain_text("dropped.mp4")
        await page.get_by_role("button", name="Remove watermark").click()
        tasks = page.locator(".task")
        await expect(tasks).to_have_count(2)
        await expect(tasks.nth(1).locator(".task-status")).to_have_text("Queued: next in line", timeout=10_000)
        await expect(tasks.nth(0).locator(".task-status")).to_have_text("Queued: position 2", timeout=10_000)

        # The key is remembered: a reload asks for nothing and restores the tasks.
        await page.reload()
        await expect(page.locator(".task")).to_have_count(2)
        await expect(page.locator(".task").nth(1).locator(".task-status")).to_have_text("Queued: next in line")
        assert await key_form.is_hidden()

        # Keyboard: cancel the newest task with Tab focus + Enter.
        cancel = page.locator(".task").first.get_by_role("button", name="Cancel")
        await cancel.focus()
        await page.keyboard.press("Enter")
        await expect(page.locator(".task").first.locator(".task-status")).to_have_text("Cancelled")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "web-page-queued.png"), full_page=True)
        assert errors == []


async def test_page_keeps_its_tasks_tokens_on_an_anonymous_server(tmp_path):
    """No API_KEY on a public bind (ALLOW_ANONYMOUS): no key is asked, and the page follows, restores
    after a reload and cancels its task with the task's own token (there is no list to read)."""
    from playwright.async_api import expect

    clip = make_marked_clip(tmp_path / "a.mp4", frames=4)
    settings = test_settings(tmp_path, host="0.0.0.0", allow_anonymous=True)
    async with running_app(settings) as app, browser_page() as (page, errors):
        await page.goto(app.url)
        await expect(page.locator("#readiness")).to_contain_text("Models loading")
        await page.get_by_label("Video files").set_input_files(str(clip))
        await page.get_by_role("button", name="Remove watermark").click()
        task = page.locator(".task")
        await expect(task.locator(".task-status")).to_contain_text("Queued", timeout=10_000)
        saved = await page.evaluate("JSON.parse(localStorage.getItem('sora-unmark.tasks'))")
        assert len(saved) == 1 and len(saved[0]["token"]) >= 40
        await page.reload()
        await expect(page.locator(".task")).to_have_count(1)
        await expect(page.locator(".task .task-status")).to_contain_text("Queued", timeout=10_000)
        assert await page.locator("#auth").is_hidden()
        await page.locator(".task").get_by_role("button", name="Cancel").click()
        await expect(page.locator(".task .task-status")).to_have_text("Cancelled")
        assert errors == []


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n} B" if n < 1024 else f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
