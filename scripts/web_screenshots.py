"""Screenshots of `arbiscale serve` with the bundled models for README/docs, taken in headless chromium.

Starts the app on a free loopback port, upscales a crop of examples/coffee.png 3x in the Upscale tab,
generates one image in the Generate tab, and saves docs/web-upscale.png and docs/web-generate.png.
Needs the web extra, selenium, and Debian's chromium + chromium-driver.

    python scripts/web_screenshots.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "arbiscale.cli.main", "serve", "--port", str(port)])
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        photo = Path(tempfile.mkdtemp()) / "coffee_crop.png"
        Image.open(ROOT / "examples" / "coffee.png").convert("RGB").crop((100, 60, 228, 156)).save(photo)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)
        wait = WebDriverWait(driver, 600)
        driver.get(url)
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-input input[type=file]"))).send_keys(str(photo))
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-input img")))
        scale = driver.find_element(By.CSS_SELECTOR, "#upscale-scale input")
        scale.clear()
        scale.send_keys("3")
        driver.find_element(By.CSS_SELECTOR, "#upscale-run").click()
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upscale-gallery img")))
        time.sleep(2)
        driver.save_screenshot(str(ROOT / "docs" / "web-upscale.png"))
        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Generate')]").click()
        wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#generate-run"))).click()
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#generate-output img")))
        time.sleep(2)
        driver.save_screenshot(str(ROOT / "docs" / "web-generate.png"))
        driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("wrote docs/web-upscale.png and docs/web-generate.png")


if __name__ == "__main__":
    main()
