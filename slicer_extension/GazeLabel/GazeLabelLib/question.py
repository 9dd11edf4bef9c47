"""Ask the server's ``vqa`` task a question about the loaded image and show the evidence in the scene.

The answer (``case.prediction.answer`` of the reply) is shown beside the case being edited, never instead of
it: the evidence is two display-only nodes, so saving the label is unaffected by a question:

==============================  ================================================================================
``vtkMRMLMarkupsROINode``       the evidence box, magenta (role ``vqa_evidence``; absent when the answer has none)
``vtkMRMLMarkupsFiducialNode``  the fixations the answer rests on, numbered as in the answer's case (role
                                ``vqa_fixations``)
==============================  ================================================================================

:func:`check_question` refuses what the server would refuse (empty, over :data:`MAX_QUESTION_CHARS`) before a
request is sent. Pure logic over an MRML scene; the widget only calls :meth:`AnnotationSession.ask`.
"""

from __future__ import annotations

import vtk

from . import scene_io

MAX_QUESTION_CHARS = 300  # the server's limit (models.schema.MAX_QUESTION_CHARS)
EVIDENCE_COLOR = (1.0, 0.2, 1.0)  # magenta
EVIDENCE_ROLES = ("vqa_evidence", "vqa_fixations")


def check_question(question) -> str:
    """The question, stripped; ValueError naming the problem when it is empty or too long."""
    if not isinstance(question, str):
        raise ValueError(f"question: expected text, got {type(question).__name__}")
    text = question.strip()
    if not text:
        raise ValueError("question: type a question first, e.g. 'Is there a pleural effusion?'")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(f"question: {len(text)} characters; at most {MAX_QUESTION_CHARS} are accepted")
    return text


def answer_of(result: dict) -> dict:
    """The answer block of a ``vqa`` reply (ValueError when the reply has none)."""
    case = result.get("case") if isinstance(result.get("case"), dict) else {}
    answer = (case.get("prediction") or {}).get("answer")
    if not isinstance(answer, dict) or "answer" not in answer:
        raise ValueError("the server's reply holds no answer (is its 'vqa' task a GazeLabel vqa model?)")
    return answer


def answer_text(answer: dict) -> str:
    """One line for the widget: the answer and its confidence, or why it cannot answer."""
    if not answer.get("answerable", True):
        return f"Cannot answer: {answer.get('reason') or 'no reason given'}"
    text = f"{answer['answer']} (confidence {float(answer.get('confidence') or 0.0):.2f})"
    if answer.get("box") is not None:
        text += "; evidence box shown"
    if answer.get("fixations"):
        text += f"; {len(answer['fixations'])} fixation(s) from the {answer.get('gaze_source') or 'given'} gaze"
    return text


def clear_evidence(scene) -> None:
    for role in EVIDENCE_ROLES:
        for node in scene_io.nodes_with_role(scene, role):
            scene.RemoveNode(node)


def show_evidence(scene, answer: dict, fixations: list[dict]) -> dict:
    """Draw the answer's evidence box and fixations (``fixations``: the answer's case's, original pixels) over
    the image volume; replaces the previous answer's. Returns ``{"box": node or None, "fixations": node or None}``."""
    clear_evidence(scene)
    volume = scene_io.require_role(scene, "image")
    out = {"box": None, "fixations": None}
    box = answer.get("box")
    if box is not None:
        roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "GazeLabel answer evidence")
        roi.SetAttribute(scene_io.ROLE, "vqa_evidence")
        roi.CreateDefaultDisplayNodes()
        scene_io.set_box_pixels(volume, roi, [float(v) for v in box])
        display = roi.GetDisplayNode()
        display.SetSelectedColor(*EVIDENCE_COLOR)
        display.SetColor(*EVIDENCE_COLOR)
        display.SetFillOpacity(0.0)
        display.SetPropertiesLabelVisibility(False)
        display.SetHandlesInteractive(False)  # evidence, not an edit: no drag handles
        roi.SetLocked(True)
        out["box"] = roi
    chosen = [i for i in answer.get("fixations") or [] if 0 <= int(i) < len(fixations)]
    if chosen:
        points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "GazeLabel answer fixations")
        points.SetAttribute(scene_io.ROLE, "vqa_fixations")
        points.CreateDefaultDisplayNodes()
        ras = scene_io.pixels_to_ras(volume, [[fixations[i]["x"], fixations[i]["y"]] for i in chosen])
        for i, p in zip(chosen, ras):
            points.AddControlPoint(vtk.vtkVector3d(*p), str(i + 1))
        display = points.GetDisplayNode()
        display.SetSelectedColor(*EVIDENCE_COLOR)
        display.SetColor(*EVIDENCE_COLOR)
        points.SetLocked(True)
        out["fixations"] = points
    return out


def evidence_in_scene(scene) -> dict:
    """What :func:`show_evidence` drew, read back in pixels: ``{"box": (x1, y1, x2, y2) or None,
    "fixations": [(label, x, y), ...]}`` (for tests and the widget's status line)."""
    volume = scene_io.require_role(scene, "image")
    roi = scene_io.find_role(scene, "vqa_evidence")
    points = scene_io.find_role(scene, "vqa_fixations")
    fixations = []
    if points is not None:
        for i in range(points.GetNumberOfControlPoints()):
            ras = [0.0, 0.0, 0.0]
            points.GetNthControlPointPositionWorld(i, ras)
            x, y = scene_io.ras_to_pixels(volume, ras)[0]
            fixations.append((points.GetNthControlPointLabel(i), float(x), float(y)))
    return {"box": None if roi is None else scene_io.box_pixels(volume, roi), "fixations": fixations}
