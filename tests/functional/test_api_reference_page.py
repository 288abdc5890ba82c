"""The API reference page as a person sees it: Debian's chromium, headless, opens `GET /docs` on the app served
over HTTP (the local stack's server) and finds every operation listed. Screenshots go to build/screenshots/
(git-ignored; CI keeps them as artifacts). Without chromium and its driver this test fails, it does not skip:
`make system` installs them."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = ("chromium", "chromedriver")


@pytest.fixture(scope="module")
def browser():
    missing = [name for name in CHROMIUM if shutil.which(name) is None]
    assert not missing, f"{' and '.join(missing)} not installed: run `make system` (chromium, chromium-driver)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def redoc_bundle() -> Path:
    from rewardgate_ops.vendor import ensure_redoc

    return ensure_redoc()


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status, answer.headers["Content-Type"], answer.read()


def test_api_reference__served_locally__page_and_bundle_without_a_cdn(api_url, redoc_bundle):
    status, media, page = _get(f"{api_url}/docs")
    assert (status, media) == (200, "text/html; charset=utf-8")
    assert b'src="docs/redoc.standalone.js"' in page and b'spec-url="openapi.json"' in page
    assert b"https://" not in page and b"http://" not in page  # nothing loaded from elsewhere
    status, media, bundle = _get(f"{api_url}/docs/redoc.standalone.js")
    assert (status, media, len(bundle)) == (200, "text/javascript; charset=utf-8", redoc_bundle.stat().st_size)


def test_api_reference__opened_in_chromium__lists_every_operation(api_url, redoc_bundle, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    doc = json.loads(_get(f"{api_url}/openapi.json")[2])
    summaries = {op["summary"] for methods in doc["paths"].values() for op in methods.values()}
    # GIVEN the page WHEN chromium renders it
    browser.get(f"{api_url}/docs")
    WebDriverWait(browser, 60).until(lambda d: "Grant one reward" in d.find_element(By.TAG_NAME, "body").text)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "api-reference.png"))
    text = browser.find_element(By.TAG_NAME, "body").text
    # THEN every operation is listed by its summary, and the deprecated one is marked
    assert sorted(s for s in summaries if s not in text) == []
    assert "Deprecated" in text or "deprecated" in text
    assert len(summaries) == sum(len(m) for m in doc["paths"].values())
    # AND nothing was fetched from anywhere but the app (no CDN, no telemetry)
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and [url for url in loaded if not url.startswith(api_url + "/")] == []
