"""The web annotator in headless Chromium against a live GazeLabel server (basic auth, tiny SYNTHETIC models):
the page connects; N brings the next sample with its case; the slice view's pixels show the film, the heatmap's
colours where it is hot, a fixation glyph at every fixation and each box's outline where the Case puts them;
a report sentence highlights its evidence; dragging a box's handle and saving changes the label on the server
by the dragged distance in image pixels; training starts and is watched to its end.

One server, one ``gazelabel web`` and one browser for the module (started and stopped here). Screenshots go to
the test's tmp folder, and to ``$GAZELABEL_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from models.imaging import read_image
from webpage import Page, WebApp

pytestmark = pytest.mark.integration
USER, PASSWORD = "annotator", "gaze-web-test"


@pytest.fixture(scope="module")
def web(web_python, chromium, browser, module_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    server = module_server(basic_auth=f"{USER}:{PASSWORD}")
    secret = base / "password"
    secret.write_text(PASSWORD + "\n")
    app = WebApp(server.url, base / "web.log", ["--user", USER, "--password-file", str(secret), "--samples", "3"],
                   env={"GAZELABEL_WEB_PYTHON": str(web_python)})
    try:
        app.wait_ready()
        page = Page(browser, app).open()
        yield server, page
    finally:
        app.stop()


def keep(png_path: Path, name: str) -> None:
    out = os.environ.get("GAZELABEL_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(png_path, Path(out) / name)


def heatmap_of(server, image_id: str) -> np.ndarray:
    """The server's heatmap of ``image_id`` for the page's request (same models, same params: same map)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "slicer_extension" / "GazeLabel"))
    from GazeLabelLib.client import GazeLabelClient
    from GazeLabelLib.image_io import decode_image

    client = GazeLabelClient(server.url, username=USER, password=PASSWORD)
    reply = client.infer("pipeline", image_id, {"n_samples": 3})
    return decode_image(reply.image.data, reply.image.filename, window=False).array


def test_the_page_shows_the_case_where_the_case_puts_it(web, pixels, tmp_path):
    server, page = web
    assert "Connected to GazeLabel" in page.state("status")
    assert page.driver.find_element("id", "gl-status").text.startswith("Connected")

    image_id = page.next_case()
    assert image_id in server.image_ids
    view = page.state("case_view")
    assert view["id"] == image_id and view["synthetic"] is True
    assert "SYNTHETIC" in page.driver.find_element("id", "gl-case-title").text
    rect, vm = page.view_rect(), page.state("view_map")
    assert rect["natural"] == vm["size"], (rect, vm)  # one view pixel is one page pixel (device scale 1)

    film = read_image(server.store / f"{image_id}.png").array  # (H, W) in [0, 1], as the page's window/level
    h, w = film.shape
    shot = tmp_path / "web_annotator_case.png"
    png = page.screenshot(shot)
    keep(shot, "web_annotator_case.png")
    assert png.mean(axis=2).std() > 25, "blank page"

    # The film: grey as the image's own pixels where no overlay is drawn (JPEG frames: compare 7x7 means).
    fix = np.array([[f["x"], f["y"]] for f in view["fixations"]] or [[-1e9, -1e9]])
    edges = [(b["x1"], b["y1"], b["x2"], b["y2"]) for b in view["boxes"]]

    def quiet(x, y):
        near_edge = any(min(abs(x - x1), abs(x - x2)) < 12 and y1 - 12 < y < y2 + 12 or
                        min(abs(y - y1), abs(y - y2)) < 12 and x1 - 12 < x < x2 + 12 for x1, y1, x2, y2 in edges)
        return np.hypot(*(fix - [x, y]).T).min() > 0.1 * w and not near_edge

    probes = [(x, y) for y in np.linspace(0.55 * h, 0.9 * h, 6) for x in np.linspace(0.45 * w, 0.9 * w, 6) if quiet(x, y)]
    assert probes, "no pixel free of overlays to check the film on"
    scale = vm["scale"]
    for x, y in probes[:6]:
        shown = pixels.patch(png, page.to_page(x, y), 3).mean()
        r = 3 * scale
        expected = 255 * film[int(y - r): int(y + r) + 1, int(x - r): int(x + r) + 1].mean()
        assert abs(shown - expected) < 14, f"film grey {shown:.0f} != {expected:.0f} at image pixel ({x:.0f}, {y:.0f})"

    # A fixation glyph at every fixation the case shows; each box's outline on its top edge.
    seen = [pixels.fixation_blue(pixels.patch(png, page.to_page(f["x"], f["y"]), 6)).any() for f in view["fixations"]]
    assert view["fixations"] and all(seen), f"fixation glyphs missing at {[i + 1 for i, s in enumerate(seen) if not s]}"
    assert view["boxes"], "the tiny models' case has no box"
    for box in view["boxes"]:
        x, y = box["x1"] + 0.25 * (box["x2"] - box["x1"]), box["y1"]
        assert pixels.box_green(pixels.patch(png, page.to_page(x, y), 2)).any(), f"{box['finding']} outline not at ({x}, {y})"

    # The heatmap: the tiny classifier's map is nearly flat, so it shows nothing at first (transparent below its
    # baseline); with heat contrast (C) and full opacity its colours appear where the map is hot and not where
    # it is cold.
    heat = heatmap_of(server, image_id)
    assert heat.shape == film.shape
    page.set_state("heatmap_opacity", 1.0)
    page.key("c")
    page.wait(lambda: page.state("show_heat_stretch"), 10, "C did not switch the heat contrast on")
    page.settle()
    shot = tmp_path / "web_annotator_heat.png"
    hot_png = page.screenshot(shot)
    keep(shot, "web_annotator_heat.png")
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    inner = (xs > 8) & (xs < w - 8) & (ys > 8) & (ys < h - 8)  # off the film's border and the boxes' edges
    for x1, y1, x2, y2 in edges:
        inner &= ~(((np.abs(xs - x1) < 12) | (np.abs(xs - x2) < 12)) & (ys > y1 - 12) & (ys < y2 + 12))
        inner &= ~(((np.abs(ys - y1) < 12) | (np.abs(ys - y2) < 12)) & (xs > x1 - 12) & (xs < x2 + 12))
    for fx, fy in fix:
        inner &= np.hypot(xs - fx, ys - fy) > 0.1 * w
    norm = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-9)
    hot = np.unravel_index(np.where(inner, norm, -1).argmax(), norm.shape)
    cold = np.unravel_index(np.where(inner, norm, 2).argmin(), norm.shape)
    assert norm[hot] > 0.8 and norm[cold] < 0.4, (norm[hot], norm[cold])  # above / below the colour table's floor
    (hr, hg, hb), (cr, cg, cb) = (pixels.patch(hot_png, page.to_page(x + 0.5, y + 0.5), 2).mean(axis=0)
                                  for y, x in (hot, cold))
    assert hr - hb > 60 and hg >= hb, f"no heat colour at the heatmap's peak {hot[::-1]}: RGB {hr:.0f} {hg:.0f} {hb:.0f}"
    assert abs(cr - cb) < 20, f"heat colour where the heatmap is cold {cold[::-1]}: RGB {cr:.0f} {cg:.0f} {cb:.0f}"
    page.key("c")
    page.set_state("heatmap_opacity", 0.4)

    # A report sentence with evidence: click it and its fixations (and box) turn magenta.
    rows = page.state("report_rows")
    linked = [r for r in rows if r["fixations"]]
    assert linked, f"no report sentence links fixations: {rows}"
    row = linked[0]
    page.click("#gl-report .gl-sentence", row["index"])
    page.wait(lambda: page.state("highlighted") == row["index"], 10, "the sentence click did not highlight it")
    page.settle()
    shot = tmp_path / "web_annotator_evidence.png"
    png = page.screenshot(shot)
    keep(shot, "web_annotator_evidence.png")
    for i in row["fixations"]:
        f = view["fixations"][i]
        assert pixels.magenta(pixels.patch(png, page.to_page(f["x"], f["y"]), 6)).any(), f"fixation {i + 1} not highlighted"
    for i in row["boxes"]:
        b = view["boxes"][i]
        along = [pixels.magenta(pixels.patch(png, page.to_page(b["x1"] + t * (b["x2"] - b["x1"]), b["y2"]), 2)).any()
                 for t in (0.2, 0.4, 0.6, 0.8)]
        assert any(along), f"box {i + 1} ({b['finding']}) not highlighted"
    page.key("\ue00c")  # Escape clears it
    page.wait(lambda: page.state("highlighted") is None, 10, "Esc did not clear the highlight")


def test_dragging_a_box_handle_and_saving_moves_the_label_on_the_server(web, tmp_path):
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    server, page = web
    image_id = page.next_case()
    # Remove the model's boxes (the tiny models frame the whole image) and add one for Pneumothorax.
    while page.state("box_rows"):
        n = len(page.state("box_rows"))
        page.click(".gl-box .gl-remove")
        page.wait(lambda: len(page.state("box_rows")) == n - 1, 10, "remove did not remove the box")
    page.set_state("new_box_finding", "Pneumothorax")
    page.click("#gl-add-box")
    page.wait(lambda: len(page.state("box_rows")) == 1, 10, "Add box did not add a box")
    assert page.state("box_rows")[0]["editable"], "a new box comes with its drag handles"
    page.settle()
    x1, y1, x2, y2 = page.state("box_rows")[0]["xyxy"]
    w, h = page.state("case_view")["width"], page.state("case_view")["height"]
    assert (x1, x2) == pytest.approx((0.375 * w, 0.625 * w), abs=0.5)

    # Drag the right edge's handle 60 page pixels right, in small steps as a hand does.
    scale, dx = page.state("view_map")["scale"], 60
    start = page.to_page(x2, 0.5 * (y1 + y2))
    x0, y0 = int(round(start[0])), int(round(start[1]))
    actions = ActionBuilder(page.driver, mouse=PointerInput(interaction.POINTER_MOUSE, "mouse"))
    actions.pointer_action.move_to_location(x0 - 3, y0).pause(0.3).move_to_location(x0, y0).pause(0.6)
    actions.pointer_action.pointer_down().pause(0.3)
    for step in range(1, 11):
        actions.pointer_action.move_to_location(x0 + step * dx // 10, y0).pause(0.05)
    actions.pointer_action.pause(0.3).pointer_up().pause(0.3)
    actions.perform()
    page.wait(lambda: page.state("box_rows")[0]["xyxy"][2] > x2 + 1, 15, "the drag did not move the box's right edge")
    page.settle()
    shot = tmp_path / "web_annotator_drag.png"
    page.screenshot(shot)
    keep(shot, "web_annotator_drag.png")

    page.key("s")
    label = server.store / "labels" / "final" / f"{image_id}.json"
    page.wait(lambda: label.exists() and page.state("saved"), 30, "S did not save the label")
    saved = json.loads(label.read_text())
    assert [b["finding"] for b in saved["boxes"]] == ["Pneumothorax"]
    box = saved["boxes"][0]
    # The pointer moves in whole page pixels and the view maps each to 'scale' image pixels; the widget moves
    # the edge by the pointer's displacement, so the edge moves dx * scale image pixels, up to one page pixel
    # at each end of the drag (2 * scale) plus the 0.5 px of the label's own rounding.
    tolerance = 2 * scale + 0.5
    assert box["x2"] - x2 == pytest.approx(dx * scale, abs=tolerance), (box, x2, dx, scale)
    for key, before in (("x1", x1), ("y1", y1), ("y2", y2)):
        assert box[key] == pytest.approx(before, abs=0.5), (key, box, before)
    assert len(saved["fixations"]) == len(page.state("case_view")["fixations"])


def test_next_sample_and_training_from_the_page(web):
    server, page = web
    first = page.next_case()
    page.key("s")
    page.wait(lambda: (server.store / "labels" / "final" / f"{first}.json").exists(), 30, "S did not save")
    second = page.next_case()
    assert second != first, "next sample gave the image just labelled"

    page.set_state("train_params", json.dumps({"epochs": 1, "size": 64, "width": 8}))
    page.set_state("trainer", "gaze_classifier")
    page.click("#gl-train")
    page.wait(lambda: "Training:" in (page.state("train_status") or ""), 30, "training did not start")
    started = time.monotonic()
    page.wait(lambda: not page.state("training") and "Training: " in page.state("train_status")
              and "SUBMITTED" not in page.state("train_status") and "RUNNING" not in page.state("train_status"),
              240, "training did not finish")
    assert page.state("train_status") == "Training: DONE", (page.state("train_status"), page.state("train_details"),
                                                            server.log_tail())
    assert page.driver.find_element("id", "gl-train-status").text == "Training: DONE"
    print(f"training watched for {time.monotonic() - started:.0f} s")


def test_the_question_box_answers_and_highlights_the_evidence(web, pixels, tmp_path):
    """Type a question, press Enter: the page shows the server's vqa answer for this image (the same line the
    Slicer module shows) and draws its evidence in magenta where the answer's case puts it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "slicer_extension" / "GazeLabel"))
    from GazeLabelLib.client import GazeLabelClient
    from GazeLabelLib.question import answer_text
    from selenium.webdriver.common.keys import Keys

    server, page = web
    image_id = page.next_case()
    page.wait(lambda: page.state("can_ask"), 10, "the Ask button stayed disabled with a vqa task on the server")
    client = GazeLabelClient(server.url, username=USER, password=PASSWORD)
    shown_evidence = 0
    for question in ("Which regions were not inspected?", "Where is the pleural effusion?", "Is there cardiomegaly?"):
        reply = client.infer("vqa", image_id, {"question": question}, output="json").result
        want = reply["case"]["prediction"]["answer"]
        box = page.driver.find_element("css selector", "#gl-question")
        field = box if box.tag_name == "input" else box.find_element("css selector", "input")
        field.send_keys(Keys.CONTROL + "a", Keys.DELETE)  # (WebElement.clear() does not tell Vue)
        field.send_keys(question + Keys.ENTER)  # Enter right after the last key: the page asks what was typed
        page.wait(lambda: page.state("answer_text") == answer_text(want), 60,
                  f"the page did not show the answer to {question!r}: {answer_text(want)!r} "
                  f"(the page: question {page.state('question')!r}, answer {page.state('answer_text')!r})")
        assert page.driver.find_element("id", "gl-answer").text == answer_text(want)
        page.settle()
        png = page.screenshot(tmp_path / "answer.png")
        had_evidence = shown_evidence
        fixations = reply["case"]["fixations"]
        for i in want.get("fixations") or []:
            f = fixations[i]
            assert pixels.magenta(pixels.patch(png, page.to_page(f["x"], f["y"]), 6)).any(), \
                f"{question!r}: evidence fixation {i + 1} not drawn"
            shown_evidence += 1
        if want.get("box") is not None:
            x1, y1, x2, y2 = want["box"]
            along = [pixels.magenta(pixels.patch(png, page.to_page(x1 + t * (x2 - x1), y2), 2)).any()
                     for t in np.linspace(0.1, 0.9, 9)]
            assert any(along), f"{question!r}: evidence box not drawn"
            shown_evidence += 1
        if shown_evidence > had_evidence == 0:  # the README's screenshot: the first answer with evidence
            keep(tmp_path / "answer.png", "web_annotator_question.png")
    assert shown_evidence, "none of the answers had evidence to draw"
