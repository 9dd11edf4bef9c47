"""What the browser tests drive: ``gazelabel web`` as a subprocess (:class:`WebApp`), a Chromium tab on it
(:class:`Page`: the app's state through ``window.trame.state``, image pixels -> page pixels through the
``view_map`` the app publishes, screenshots) and colour tests on screenshots (:class:`Pixels`)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    from monailabel_app.launcher import free_port as free

    return free()


class WebApp:
    """``gazelabel web`` as a user starts it (project CLI -> the web venv), stopped with its process group."""

    def __init__(self, server_url: str, log: Path, extra: list[str] = (), env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        command = [sys.executable, "-m", "models.cli", "web", "--server", server_url, "--port", str(self.port), *extra]
        environment = {**os.environ, **(env or {})}
        environment.pop("GAZELABEL_AUTH_TOKEN", None)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> "WebApp":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gazelabel web exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:  # nosec B310 (loopback)
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"gazelabel web did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        keep = [line for line in text.splitlines() if "WindowResizeEvent" not in line and "ConfigureEvent" not in line
                and "vtkObject.cxx" not in line and line.strip()]
        return "\n".join(keep[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            for sig in (signal.SIGINT, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue


class Page:
    """A headless Chromium tab on the web annotator."""

    def __init__(self, driver, app: WebApp):
        self.driver = driver
        self.app = app

    def open(self) -> "Page":
        self.driver.get(self.app.url)
        self.wait(lambda: self.state("connected"), 60, "the page never connected to the server")
        return self

    def state(self, key: str):
        return self.driver.execute_script(
            "return window.trame && window.trame.state ? window.trame.state.get(arguments[0]) : null", key)

    def set_state(self, key: str, value) -> None:
        self.driver.execute_script("window.trame.state.set(arguments[0], arguments[1])", key, value)

    def wait(self, condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{what} (after {timeout:.0f} s); page error: {self.state('error')!r}; "
                             f"status: {self.state('status')!r}\n{self.app.log_tail(20)}")

    def key(self, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(key).perform()

    def click(self, css: str, index: int = 0) -> None:
        """Click the ``index``-th element matching ``css`` once the page has drawn it."""
        found = self.wait(lambda: (e := self.driver.find_elements("css selector", css)) and len(e) > index and e,
                          10, f"no element {css} [{index}] on the page")
        found[index].click()

    def next_case(self, timeout: float = 120.0) -> str:
        """Press N (next sample, then the pipeline) and wait until the new case is in the view."""
        serial = (self.state("paint") or {}).get("serial", 0)
        self.key("n")
        paint = self.wait(lambda: (p := self.state("paint")) and p.get("serial", 0) >= serial + 2
                          and p.get("stage") == "case" and p, timeout, "no new case after N")
        self.settle()
        return paint["image_id"]

    def frame_count(self) -> int:
        return self.driver.execute_script("return window.__glFrames || 0")

    def settle(self, quiet_s: float = 0.8, timeout: float = 15.0) -> None:
        """Wait until the view has stopped receiving frames for ``quiet_s`` (the still frame is in)."""
        self.driver.execute_script("""
          if (!window.__glObserver) {
            window.__glFrames = 0;
            window.__glObserver = new MutationObserver(function () { window.__glFrames++; });
            window.__glObserver.observe(document.getElementById('gl-view'),
                                        {subtree: true, attributes: true, attributeFilter: ['src']});
          }""")
        deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            count = self.frame_count()
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)

    def view_rect(self) -> dict:
        """The slice view's picture on the page (CSS pixels) and its size in view pixels."""
        return self.driver.execute_script("""
          var img = document.querySelector('#gl-view img'); var r = img.getBoundingClientRect();
          return {left: r.left, top: r.top, width: r.width, height: r.height,
                  natural: [img.naturalWidth, img.naturalHeight]};""")

    def to_page(self, x: float, y: float) -> tuple[float, float]:
        """Image pixel ``(x, y)`` -> page pixel (CSS, continuous), through the app's view map."""
        vm, rect = self.state("view_map"), self.view_rect()
        (a, b, c), (d, e, f) = vm["affine"]
        col, row = a * x + b * y + c, d * x + e * y + f
        sx, sy = rect["width"] / vm["size"][0], rect["height"] / vm["size"][1]
        return rect["left"] + (col + 0.5) * sx, rect["top"] + (row + 0.5) * sy

    def screenshot(self, path: Path | None = None) -> np.ndarray:
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        if path is not None:
            Path(path).write_bytes(png)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)


class Pixels:
    """Colour tests on a page screenshot (``(H, W, 3)`` float RGB)."""

    @staticmethod
    def patch(png: np.ndarray, xy: tuple[float, float], radius: int) -> np.ndarray:
        """``(N, 3)`` RGB of the square of ``radius`` around page pixel ``xy``."""
        x, y = int(round(xy[0])), int(round(xy[1]))
        return png[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1].reshape(-1, 3)

    @staticmethod
    def fixation_blue(p: np.ndarray) -> np.ndarray:  # scene_io.FIXATION_COLOR (0, 204, 255)
        return (p[:, 2] > 200) & (p[:, 0] < 90) & (p[:, 1] > 140)

    @staticmethod
    def box_green(p: np.ndarray) -> np.ndarray:  # scene_io.BOX_COLOR (26, 255, 51)
        return (p[:, 1] > 200) & (p[:, 0] < 120) & (p[:, 2] < 120)

    @staticmethod
    def magenta(p: np.ndarray) -> np.ndarray:  # scene_io.HIGHLIGHT_COLOR (255, 51, 255), maybe under a faded box
        return (p[:, 0] > 160) & (p[:, 1] < 130) & (p[:, 2] > 160)
