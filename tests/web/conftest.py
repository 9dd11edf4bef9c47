"""The web annotator in a real browser: a live GazeLabel server with the tiny SYNTHETIC models, ``gazelabel web``
(the trame-slicer app, run in ``.venv-web``), and Debian's headless Chromium driven by chromedriver (selenium).

Skips, naming what to install, when the web venv (``bash scripts/web-venv.sh``; ``make test`` builds it) or the
browser (``apt-get install chromium chromium-driver``; ``make test`` installs it) is missing. Every server,
web app and browser is started and stopped here.

``Page`` reads the app's state through ``window.trame.state`` (what the page's widgets show) and maps image
pixels to page pixels with the ``view_map`` the app publishes (the slice view's own XY-to-RAS matrix), so a
test can look at the screenshot where the Case puts a fixation or a box.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB_PYTHON = Path(os.environ.get("GAZELABEL_WEB_PYTHON") or ROOT / ".venv-web" / "bin" / "python")
WINDOW = (1400, 900)  # browser window, CSS pixels (device scale 1: a CSS pixel is a screenshot pixel)


def _integration_conftest():
    """``tests/integration/conftest.py`` under its own module name (shared with tests/slicer)."""
    name = "gazelabel_integration_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "integration" / "conftest.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


module_server = _integration_conftest().module_server  # one live server for a test module


@pytest.fixture(scope="session")
def web_python() -> Path:
    """The web venv's python, able to import trame-slicer and the app; else skip with the command to run."""
    if not WEB_PYTHON.exists():
        pytest.skip(f"the web annotator's venv is missing ({WEB_PYTHON}): run `bash scripts/web-venv.sh` "
                    "(make test builds it)")
    check = subprocess.run([str(WEB_PYTHON), "-c", "import trame_slicer, web_annotator.app"], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"})
    if check.returncode != 0:
        pytest.skip(f"{WEB_PYTHON} cannot import the web annotator: {check.stderr.strip().splitlines()[-1:]} "
                    "(rerun `bash scripts/web-venv.sh`)")
    return WEB_PYTHON


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver, and selenium importable; else skip naming the packages."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless browser tests need Debian's chromium and chromium-driver: apt-get install chromium "
                    "chromium-driver (make test installs them)")
    if importlib.util.find_spec("selenium") is None:
        pytest.skip("selenium is in the test extra: pip install -e '.[test]'")
    return browser, driver


@pytest.fixture(scope="module")
def browser(chromium):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(arg)  # --no-sandbox: Chromium's sandbox refuses to run as root (CI runs as root)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def pixels():
    from webpage import Pixels

    return Pixels
