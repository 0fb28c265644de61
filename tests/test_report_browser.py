"""The HTML report and volume viewer, driven in headless Chromium through Selenium (issue 22).

They need Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them where it
can) and Selenium (the test extra); without them every test here is skipped with the reason,
and ``make test`` prints how many browser tests ran.
"""

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from medfuse.evaluation.report import pair_report, volume_report

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="Selenium is not installed (pip install '.[test]')")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--allow-file-access-from-files",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def severe_messages(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def canvas_pixels(driver, element_id: str) -> np.ndarray:
    """The RGB pixels of a canvas, read back from the page."""
    url = driver.execute_script(f"return document.getElementById('{element_id}').toDataURL('image/png');")
    return np.array(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def screenshot(driver) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L"))


def volumes(shape=(24, 20, 16)):
    """A: an ellipsoid with a bright core; B: one hot spot (uptake) off the centre; their mean as
    the fusion and a weight map that grows along i."""
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    radius = i**2 + j**2 + k**2
    a = np.where(radius < 0.8, 0.5, 0.0) + np.where(radius < 0.2, 0.5, 0.0)
    b = np.exp(-((i - 0.4) ** 2 + (j + 0.3) ** 2 + k**2) / 0.05)
    w_a = np.broadcast_to(np.linspace(0, 1, shape[0])[:, None, None], shape)
    return a, b, (a + b) / 2, w_a


def test_the_volume_viewer_draws_planes_that_its_sliders_mouse_and_keys_change(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    a, b, fused, w_a = volumes()
    page = tmp_path / "viewer.html"
    page.write_text(
        volume_report(
            a,
            b,
            fused,
            w_a,
            spacing=(1.0, 1.2, 2.0),
            geometry="test grid",
            colour_b="hot",
            names=("mri", "pet"),
            shares=(0.6, 0.4),
        )
    )
    browser.get(page.as_uri())
    assert severe_messages(browser) == []
    axial = canvas_pixels(browser, "axial")
    assert axial.shape == (20, 24, 3) and axial.std() > 10  # (J, I): the middle slice of the ellipsoid

    slider = browser.find_element(By.ID, "slice-k")
    slider.send_keys(Keys.END)  # the keyboard moves a focused slider: to the last slice, outside the ellipsoid
    assert browser.find_element(By.ID, "value-k").text == "15"
    assert canvas_pixels(browser, "axial").max() < axial.max()
    slider.send_keys(Keys.HOME, *[Keys.RIGHT] * 8)
    assert browser.find_element(By.ID, "value-k").text == "8"
    np.testing.assert_array_equal(canvas_pixels(browser, "axial"), axial)

    view = browser.find_element(By.ID, "view")
    view.send_keys(Keys.END)  # all B, shown hot: red dominates where B is bright
    assert browser.find_element(By.ID, "value-view").text == "B"
    only_b = canvas_pixels(browser, "axial").astype(int)
    assert (only_b[..., 0] - only_b[..., 2]).max() > 100
    browser.find_element(By.TAG_NAME, "body").send_keys("a")  # key a: all A, grey
    only_a = canvas_pixels(browser, "axial").astype(int)
    assert browser.find_element(By.ID, "value-view").text == "A" and np.abs(only_a[..., 0] - only_a[..., 2]).max() == 0
    browser.find_element(By.TAG_NAME, "body").send_keys("w")  # key w: the weight map, rising along i (columns)
    weights = canvas_pixels(browser, "axial")[..., 0].astype(int)
    assert weights[:, 0].max() < 20 and weights[:, -1].min() > 235

    coronal = browser.find_element(By.ID, "coronal")  # a click on the coronal plane moves i and k there
    browser.execute_script("arguments[0].scrollIntoView();", coronal)
    from selenium.webdriver.common.action_chains import ActionChains

    box = coronal.rect  # aim at the middle of column 6 (of 24, i) and row 1 (of 16, from the top: k = 14)
    x, y = box["width"] * 6.5 / 24 - box["width"] / 2, box["height"] * 1.5 / 16 - box["height"] / 2
    ActionChains(browser).move_to_element_with_offset(coronal, round(x), round(y)).click().perform()
    assert browser.find_element(By.ID, "value-i").text == "6"
    assert browser.find_element(By.ID, "value-k").text == "14"
    assert severe_messages(browser) == []
    shot = screenshot(browser)
    assert shot.std() > 5  # not blank
    Image.fromarray(shot).save(tmp_path / "viewer.png")


def test_the_pair_report_shows_every_image_without_errors(browser, tmp_path):
    rng = np.random.default_rng(0)
    a = (rng.uniform(0, 1, (48, 64)) * 255).astype(np.uint8)
    b = np.zeros((48, 64, 3), dtype=np.uint8)
    b[10:30, 20:40] = (255, 64, 0)
    fused = ((a.astype(float) + b.mean(axis=2)) / 2).astype(np.uint8)
    page = tmp_path / "pair.html"
    page.write_text(
        pair_report(
            a,
            b,
            fused,
            w_a=np.full((48, 64), 0.7),
            scores={"psnr": 12.5, "nabf": 0.1},
            names=("mri.png", "pet.png"),
            shares=(0.7, 0.3),
        )
    )
    browser.get(page.as_uri())
    assert severe_messages(browser) == []
    sizes = browser.execute_script(
        "return Array.from(document.images).map(image => [image.complete, image.naturalWidth, image.naturalHeight]);"
    )
    assert sizes == [[True, 64, 48]] * 6  # A, B, fusion, weight map, two differences, at full size
    text = browser.find_element("tag name", "body").text
    assert "↑ higher is better" in text and "↓ lower is better" in text and "A (mri.png) 70%" in text
    assert screenshot(browser).std() > 5
