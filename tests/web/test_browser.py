"""`arbiscale serve` driven by a real headless browser (Debian's chromium + chromedriver, selenium).

The app runs in its own process on the loopback address with the tiny random models; the browser
uploads a photo, runs the upscaler and reads the result's pixel size from the page, checks that bad
requests are answered in the page, and generates and re-renders an image. `.ci/run` installs the
browser and sets ARBISCALE_REQUIRE_BROWSER=1, so there the test cannot be skipped.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("ARBISCALE_REQUIRE_BROWSER"):
    pytest.skip("no chromium/chromedriver (apt install chromium chromium-driver)", allow_module_level=True)

WAIT_S = 120  # seconds a page element may take to appear


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(condition)


def error_text(driver) -> str:
    return wait_for(driver, expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".toast-body"))).text


def fill(driver, selector: str, value: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, f"{selector} input, {selector} textarea")
    field.clear()
    field.send_keys(value)


def test_upload_upscale_and_read_the_result_size(server, browser, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (20, 24, 3), dtype=np.uint8)).save(photo)
    browser.get(server.url)
    upload = wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-input input[type=file]")))
    upload.send_keys(str(photo))
    wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-input img")))
    fill(browser, "#upscale-scale", "2.5")
    browser.find_element(By.CSS_SELECTOR, "#upscale-run").click()
    image = wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-gallery img")))
    wait_for(browser, lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image) == [60, 50]
    assert browser.find_elements(By.CSS_SELECTOR, "#upscale-files a")  # the download
    note = browser.find_element(By.TAG_NAME, "body").text
    assert "upscale ddim, 5 steps, eta 1, LR consistency on" in note and "generate ddim, 50 steps, eta 0" in note, note

    fill(browser, "#upscale-size", "60x")
    browser.find_element(By.CSS_SELECTOR, "#upscale-run").click()
    assert "size:" in error_text(browser)


def test_the_page_fetches_nothing_from_outside_this_machine(server, browser):
    import json
    from urllib.parse import urlparse

    browser.get(server.url)
    wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-run")))
    time.sleep(2)  # fonts and late scripts
    messages = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = {m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"}
    hosts = {urlparse(url).hostname for url in urls if url.startswith("http")}
    assert urls and hosts <= {"127.0.0.1", "localhost"}, sorted(urls)


def test_bad_requests_are_answered_in_the_page(server, browser, tmp_path):
    browser.get(server.url)
    wait_for(browser, expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#upscale-run"))).click()
    assert "upload an image first" in error_text(browser)

    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(photo)
    browser.get(server.url)
    wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-input input[type=file]"))).send_keys(str(photo))
    wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-input img")))
    fill(browser, "#upscale-scale", "100")
    browser.find_element(By.CSS_SELECTOR, "#upscale-run").click()
    assert "side limit" in error_text(browser)


def test_generate_and_read_the_result_size(server, browser):
    browser.get(server.url)
    wait_for(browser, expected_conditions.element_to_be_clickable((By.XPATH, "//button[@role='tab' and contains(., 'Generate')]"))).click()
    wait_for(browser, expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#generate-run"))).click()
    image = wait_for(browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#generate-output img")))
    wait_for(browser, lambda driver: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image) == [256, 256]
