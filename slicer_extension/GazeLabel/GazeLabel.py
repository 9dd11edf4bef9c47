"""GazeLabel: annotate chest X-rays with a gaze-guided MONAI Label server in 3D Slicer.

The widget only wires Qt to :class:`GazeLabelLib.session.AnnotationSession`, which holds the behaviour
and runs headless (see ``tests/slicer``). The module shows, in the Red slice view: the radiograph, the
model's heatmap, the predicted fixations numbered in reading order (disc size = duration) joined by the
scanpath, and one editable box per finding.
"""

import logging

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from GazeLabelLib import scene_io
from GazeLabelLib.client import ServerError
from GazeLabelLib.headless import HEATMAP_OPACITY, fit_with_margin, image_px_per_view_px
from GazeLabelLib.image_io import ImageDecodeError
from GazeLabelLib.session import DEFAULT_SCREEN, AnnotationSession, parse_screen

SETTINGS = "GazeLabel/"
TRAIN_POLL_MS = 5000
GAZE_PUMP_MS = 33  # map the samples that arrived about 30 times a second; LSL and the sockets buffer between
GAZE_SOURCES = ("Lab Streaming Layer", "Gazepoint (127.0.0.1:4242)", "Tobii Pro", "Mouse (demo)")
# Checklist state <-> CheXpert value: checked = confirmed, unchecked = rejected, partial = uncertain.
CHECK_TO_VALUE = {int(qt.Qt.Checked): 1, int(qt.Qt.Unchecked): 0, int(qt.Qt.PartiallyChecked): -1}
VALUE_TO_CHECK = {1: qt.Qt.Checked, 0: qt.Qt.Unchecked, -1: qt.Qt.PartiallyChecked, None: qt.Qt.Unchecked}


class GazeLabel(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "GazeLabel"
        self.parent.categories = ["Active Learning"]
        self.parent.dependencies = ["Markups"]
        self.parent.contributors = ["GazeLabel developers"]
        self.parent.helpText = (
            "Review a gaze-guided chest X-ray model's output (findings, heatmap, predicted reading scanpath, "
            "boxes, report), correct it, and save it as a label to a GazeLabel MONAI Label server."
        )
        self.parent.acknowledgementText = "Built on MONAI Label and 3D Slicer."


class GazeLabelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Connection settings, next / run / save / train buttons, findings checklist, report editor, playback."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.playback = None
        self.playTimer = qt.QTimer()
        self.playTimer.setSingleShot(True)
        self.trainTimer = qt.QTimer()
        self.trainTimer.setInterval(TRAIN_POLL_MS)
        self.gazeTimer = qt.QTimer()
        self.gazeTimer.setInterval(GAZE_PUMP_MS)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/GazeLabel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = GazeLabelLogic()

        settings = qt.QSettings()
        self.ui.serverUrl.text = settings.value(SETTINGS + "server", "http://127.0.0.1:8000")
        self.ui.username.text = settings.value(SETTINGS + "username", "")
        self.ui.authMode.addItems(["None", "Bearer token", "Basic (user + password)"])
        self.ui.authMode.currentIndex = int(settings.value(SETTINGS + "authMode", 0))
        self._onAuthModeChanged()

        self.ui.authMode.connect("currentIndexChanged(int)", self._onAuthModeChanged)
        self.ui.connectButton.connect("clicked()", self.onConnect)
        self.ui.nextButton.connect("clicked()", self.onNextSample)
        self.ui.runButton.connect("clicked()", self.onRunPipeline)
        self.ui.saveButton.connect("clicked()", self.onSave)
        self.ui.trainButton.connect("clicked()", self.onTrain)
        self.ui.addBoxButton.connect("clicked()", self.onAddBox)
        self.ui.askButton.connect("clicked()", self.onAsk)
        self.ui.questionEdit.connect("returnPressed()", self.onAsk)
        self.ui.findingsList.connect("itemChanged(QListWidgetItem*)", self.onFindingChanged)
        self.ui.reportEdit.connect("textChanged()", self.onReportEdited)
        self.ui.playButton.connect("clicked()", self.onPlay)
        self.ui.prevFixationButton.connect("clicked()", lambda: self._showFrame(self._playback().back()))
        self.ui.nextFixationButton.connect("clicked()", lambda: self._showFrame(self._playback().step()))
        self.playTimer.connect("timeout()", self._onPlayTick)
        self.trainTimer.connect("timeout()", self.onPollTraining)
        self.ui.gazeSource.addItems(list(GAZE_SOURCES))
        self.ui.gazeSource.currentIndex = int(settings.value(SETTINGS + "gazeSource", 0))
        self.ui.annotatorName.text = settings.value(SETTINGS + "annotator", "")
        self.ui.screenGeometry.text = settings.value(SETTINGS + "screen", DEFAULT_SCREEN)
        self.ui.gazeButton.connect("toggled(bool)", self.onGazeToggled)
        self.ui.readerCombo.connect("currentIndexChanged(int)", self.onReaderChosen)
        self.gazeTimer.connect("timeout()", self.onGazeTick)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneClosed)
        self._updateButtons()

    def cleanup(self):
        self.playTimer.stop()
        self.trainTimer.stop()
        self.gazeTimer.stop()
        self.logic.stopGaze()
        self.removeObservers()

    def onSceneClosed(self, caller, event):
        self.playTimer.stop()
        self.playback = None
        self.logic.session.reset()
        self.ui.imageLabel.text = "No image"
        self._updateButtons()

    # ------------------------------------------------------------------ helpers
    def _run(self, what, function, *args):
        """Run ``function`` with a wait cursor; show server and data errors in a dialog, not a traceback."""
        try:
            with slicer.util.tryWithErrorDisplay(f"GazeLabel: {what} failed.", waitCursor=True):
                return function(*args)
        except (ServerError, ImageDecodeError, scene_io.SceneError, ValueError) as e:
            logging.error("GazeLabel: %s failed: %s", what, e)
            return None

    def _updateButtons(self):
        connected = self.logic.session.client is not None
        loaded = self.logic.session.image_id is not None
        hasCase = scene_io.find_role(slicer.mrmlScene, "case") is not None
        self.ui.nextButton.enabled = connected
        self.ui.runButton.enabled = connected and loaded
        self.ui.saveButton.enabled = connected and hasCase
        self.ui.trainButton.enabled = connected
        self.ui.addBoxButton.enabled = hasCase
        self.ui.playButton.enabled = hasCase
        self.ui.gazeButton.enabled = loaded
        self.ui.askButton.enabled = connected and loaded and "vqa" in self.logic.session.models
        self._refreshReaders()

    def _onAuthModeChanged(self, *_):
        mode = self.ui.authMode.currentIndex
        self.ui.token.visible = mode == 1
        self.ui.username.visible = self.ui.password.visible = mode == 2

    # ------------------------------------------------------------------ server
    def onConnect(self):
        mode = self.ui.authMode.currentIndex
        info = self._run("connect", lambda: self.logic.session.connect(
            self.ui.serverUrl.text.strip(),
            token=self.ui.token.text.strip() if mode == 1 else None,
            username=self.ui.username.text.strip() if mode == 2 else None,
            password=self.ui.password.text if mode == 2 else None,
        ))
        if info is None:
            self.ui.statusLabel.text = "Not connected"
            return
        settings = qt.QSettings()
        settings.setValue(SETTINGS + "server", self.ui.serverUrl.text.strip())
        settings.setValue(SETTINGS + "username", self.ui.username.text.strip())
        settings.setValue(SETTINGS + "authMode", mode)
        session = self.logic.session
        for combo, names, preferred in (
            (self.ui.strategy, session.strategies, "uncertainty"),
            (self.ui.inferModel, session.models, "pipeline"),
            (self.ui.trainModel, session.trainers, ""),
        ):
            combo.clear()
            combo.addItems(names)
            if preferred in names:
                combo.currentIndex = names.index(preferred)
        self.ui.statusLabel.text = f"Connected to {info.get('name', 'server')}"
        self._updateButtons()

    def onNextSample(self):
        self.playTimer.stop()
        self.playback = None
        self.ui.answerLabel.text = "No question asked"
        image_id = self._run("next sample", self.logic.nextSample, self.ui.strategy.currentText)
        self.ui.imageLabel.text = image_id or "No image left to annotate"
        if image_id and self.ui.autoRun.checked:
            self.onRunPipeline()
        self._updateButtons()

    def onRunPipeline(self):
        if self._run("inference", self.logic.runPipeline, self.ui.inferModel.currentText) is None:
            return
        session = self.logic.session
        synthetic = " (SYNTHETIC)" if session.last_result.get("synthetic") else ""
        self.ui.imageLabel.text = f"{session.image_id}{synthetic}: heatmap from the {session.heatmap_source}"
        self._refreshFindings()
        self.ui.reportEdit.blockSignals(True)
        self.ui.reportEdit.plainText = self.logic.session.report_text()
        self.ui.reportEdit.blockSignals(False)
        self.playback = None
        self.ui.fixationLabel.text = f"{len(self._playback())} fixations, {self._playback().total_duration():.1f} s"
        self._updateButtons()

    def onAsk(self):
        """Send the question box to the server's vqa task; the answer goes under the box, its evidence on the image."""
        answer = self._run("question", self.logic.session.ask, self.ui.questionEdit.text)
        if answer is not None:
            from GazeLabelLib.question import answer_text

            self.ui.answerLabel.text = answer_text(answer)

    # ------------------------------------------------------------------ gaze capture
    def onGazeToggled(self, on):
        if not on:
            self.gazeTimer.stop()
            reading = self._run("stop gaze capture", self.logic.stopGaze)
            if reading is not None:
                self.ui.gazeIndicator.text = (f"Gaze: {len(reading.fixations)} fixations recorded "
                                              f"({reading.n_samples} samples, {100 * reading.dropped_rate:.0f}% dropped)")
            self._refreshReaders()
            return
        settings = qt.QSettings()
        settings.setValue(SETTINGS + "gazeSource", self.ui.gazeSource.currentIndex)
        settings.setValue(SETTINGS + "annotator", self.ui.annotatorName.text)
        settings.setValue(SETTINGS + "screen", self.ui.screenGeometry.text)
        started = self._run("start gaze capture", self.logic.startGaze, self.ui.gazeSource.currentIndex,
                            self.ui.annotatorName.text, self.ui.screenGeometry.text)
        if started is None:
            self.ui.gazeButton.blockSignals(True)
            self.ui.gazeButton.checked = False
            self.ui.gazeButton.blockSignals(False)
            return
        self.gazeTimer.start()

    def onGazeTick(self):
        try:
            self.logic.session.pump_gaze()
        except Exception as e:  # a tracker error must not stop Slicer; show it and stop recording
            logging.error("GazeLabel: gaze capture failed: %s", e)
            self.ui.gazeButton.checked = False
            return
        status = self.logic.session.gaze_status
        self.ui.gazeIndicator.text = ("\u25cf REC  " if status["recording"] else "") + status["text"]

    def _refreshReaders(self):
        names = self.logic.session.readers() if scene_io.find_role(slicer.mrmlScene, "case") is not None else []
        self.ui.readerCombo.blockSignals(True)
        self.ui.readerCombo.clear()
        self.ui.readerCombo.addItems(["the case's fixations"] + names)
        self.ui.readerCombo.blockSignals(False)

    def onReaderChosen(self, index):
        if index < 0:
            return
        reader = None if index == 0 else self.ui.readerCombo.itemText(index)
        self._run("show reader", self.logic.session.show_reader, reader)
        self.playback = None

    def onSave(self):
        if self.ui.gazeButton.checked:
            self.ui.gazeButton.checked = False  # the reading ends with the label
        if self._run("save label", self.logic.session.save_label) is not None:
            self.ui.statusLabel.text = f"Saved label for {self.logic.session.image_id}"

    def onTrain(self):
        if self._run("start training", self.logic.session.start_training, self.ui.trainModel.currentText) is not None:
            self.ui.trainStatus.text = "Training started"
            self.trainTimer.start()

    def onPollTraining(self):
        status = self._run("training status", self.logic.session.training_status)
        if status is None:
            self.trainTimer.stop()
            return
        self.ui.trainStatus.text = f"Training: {status.status}"
        if not status.running:
            self.trainTimer.stop()

    # ------------------------------------------------------------------ edits
    def _refreshFindings(self):
        self.ui.findingsList.blockSignals(True)
        self.ui.findingsList.clear()
        for row in self.logic.session.findings_table():
            score = "" if row["score"] is None else f"  ({row['score']:.2f})"
            item = qt.QListWidgetItem(row["finding"] + score)
            item.setData(qt.Qt.UserRole, row["finding"])
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsUserTristate)
            item.setCheckState(VALUE_TO_CHECK[row["value"]])
            self.ui.findingsList.addItem(item)
        self.ui.findingsList.blockSignals(False)

    def onFindingChanged(self, item):
        finding = item.data(qt.Qt.UserRole)
        self._run("finding decision", self.logic.session.set_finding, finding, CHECK_TO_VALUE[int(item.checkState())])

    def onAddBox(self):
        item = self.ui.findingsList.currentItem()
        if item is None:
            slicer.util.warningDisplay("Select the box's finding in the Findings list first.", windowTitle="GazeLabel")
            return
        self._run("add box", self.logic.session.add_box, item.data(qt.Qt.UserRole))

    def onReportEdited(self):
        self._run("report edit", self.logic.session.set_report_text, self.ui.reportEdit.plainText)

    # ------------------------------------------------------------------ playback
    def _playback(self):
        if self.playback is None:
            self.playback = self.logic.session.playback(speed=self.ui.playbackSpeed.value)
        return self.playback

    def onPlay(self):
        if self.playTimer.isActive():
            self.playTimer.stop()
            self.ui.playButton.text = "Play"
            return
        playback = self._playback()
        playback.speed = self.ui.playbackSpeed.value
        if playback.finished:
            playback.reset()
        self.ui.playButton.text = "Pause"
        self._onPlayTick()

    def _onPlayTick(self):
        frame = self._playback().step()
        self._showFrame(frame)
        if frame is None:
            self.ui.playButton.text = "Play"
            return
        self.playTimer.start(frame.wait_ms)

    def _showFrame(self, frame):
        self.logic.session.show_playback(self._playback())
        if frame is None:
            self.ui.fixationLabel.text = "All fixations shown"
            return
        self.ui.fixationLabel.text = (
            f"Fixation {frame.label} / {len(self._playback())}: t = {frame.t:.2f} s, {1000 * frame.duration:.0f} ms"
        )
        self.logic.centerOn(frame.x, frame.y)


class GazeLabelLogic(ScriptedLoadableModuleLogic):
    """Slicer-side glue: the session on ``slicer.mrmlScene`` plus what only a running Slicer has (views)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.session = AnnotationSession(slicer.mrmlScene)

    def nextSample(self, strategy):
        image_id = self.session.next_sample(strategy)
        if image_id is not None:
            self.showInViews()
        return image_id

    def startGaze(self, source_index, annotator, screen_text):
        """Start recording the annotator's gaze over the Red slice view (opt-in: only from the button)."""
        from GazeLabelLib import capture

        salt = self._installationSalt()
        self.session.set_annotator(annotator, salt)
        screen_px, screen_mm, distance_mm = parse_screen(screen_text)
        source = (capture.LslSource, lambda: capture.GazepointSource("127.0.0.1", 4242), capture.TobiiSource,
                  lambda: capture.MouseSource(self._mousePosition))[source_index]()
        red = slicer.app.layoutManager().sliceWidget("Red")
        view = red.sliceView()
        image = scene_io.require_role(slicer.mrmlScene, "image")

        def rect():
            top_left = view.mapToGlobal(qt.QPoint(0, 0)) - view.screen().geometry.topLeft()
            return (top_left.x(), top_left.y(), top_left.x() + view.width, top_left.y() + view.height)

        timeline = capture.ViewTimeline()
        self._stopObserving = timeline.observe_slice_view(red.mrmlSliceNode(), image, rect, lambda: view.devicePixelRatioF())
        recorder = capture.GazeRecorder(source, timeline, screen_px=screen_px, screen_mm=screen_mm, distance_mm=distance_mm)
        self.session.start_gaze(recorder)
        return True

    def stopGaze(self):
        reading = self.session.stop_gaze()
        stop = getattr(self, "_stopObserving", None)
        if stop is not None:
            stop()
            self._stopObserving = None
        return reading

    def _mousePosition(self):
        pos = qt.QCursor.pos()
        screen = slicer.app.primaryScreen()
        ratio = screen.devicePixelRatio
        origin = screen.geometry.topLeft()
        return ((pos.x() - origin.x()) * ratio, (pos.y() - origin.y()) * ratio)

    def _installationSalt(self):
        """A random per-installation secret (kept in Slicer's settings) keying the annotator pseudonyms."""
        import secrets

        settings = qt.QSettings()
        salt = settings.value(SETTINGS + "annotatorSalt", "")
        if not salt:
            salt = secrets.token_hex(16)
            settings.setValue(SETTINGS + "annotatorSalt", salt)
        return salt

    def runPipeline(self, model):
        case = self.session.run_pipeline(model)
        self.showInViews()
        return case

    def showInViews(self):
        """Image in the Red view's background, heatmap in its foreground, Red view alone, fitted."""
        image = scene_io.find_role(slicer.mrmlScene, "image")
        heatmap = scene_io.find_role(slicer.mrmlScene, "heatmap")
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutOneUpRedSliceView)
        slicer.util.setSliceViewerLayers(background=image, foreground=heatmap, foregroundOpacity=HEATMAP_OPACITY, fit=True)
        red = slicer.util.getNode("vtkMRMLSliceNodeRed")
        fit_with_margin(red)  # boxes on the film's edge stay visible
        self.relayoutLabels()
        for roi in scene_io.nodes_with_role(slicer.mrmlScene, "box"):  # a dragged box takes its label along
            roi.AddObserver(roi.PointEndInteractionEvent, lambda caller, event: self.relayoutLabels())

    def relayoutLabels(self):
        """Place box labels and thin fixation numbers for the Red view's current zoom."""
        image = scene_io.find_role(slicer.mrmlScene, "image")
        if image is not None and scene_io.find_role(slicer.mrmlScene, "case") is not None:
            red = slicer.util.getNode("vtkMRMLSliceNodeRed")
            scene_io.layout_labels(slicer.mrmlScene, image_px_per_view_px(red, image))

    def centerOn(self, x, y):
        """Centre the Red view on pixel (x, y), keeping the zoom."""
        image = scene_io.find_role(slicer.mrmlScene, "image")
        ras = scene_io.pixels_to_ras(image, [[x, y]])[0]
        slicer.util.getNode("vtkMRMLSliceNodeRed").JumpSliceByCentering(*ras)


class GazeLabelTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode > Reload and Test); the same checks run headless in tests/slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.test_round_trip()

    def test_round_trip(self):
        import numpy as np

        self.delayDisplay("Case -> scene -> case")
        scene = slicer.mrmlScene
        scene_io.image_volume(scene, np.zeros((64, 80), dtype=np.float32), (0.2, 0.25))
        case = {
            "schema": "gazelabel.case/1",
            "id": "selftest",
            "image": {"path": "", "width": 80, "height": 64, "spacing_mm": [0.2, 0.25], "view": "PA", "synthetic": True},
            "findings": {"Cardiomegaly": 1},
            "scores": {"Cardiomegaly": 0.9},
            "boxes": [{"finding": "Cardiomegaly", "x1": 20.0, "y1": 30.0, "x2": 60.0, "y2": 55.0, "region": None, "score": 0.8}],
            "fixations": [{"x": 10.5, "y": 12.0, "t": 0.0, "duration": 0.3}, {"x": 40.0, "y": 41.5, "t": 0.35, "duration": 0.2}],
            "readers": {},
            "report": {"findings": "The heart is enlarged.", "impression": "Cardiomegaly.", "evidence": []},
            "coverage": {},
            "source": {"dataset": "selftest", "ref": None, "model": None},
        }
        scene_io.case_to_scene(scene, case)
        back = scene_io.scene_to_case(scene)
        self.assertEqual(back["findings"], case["findings"])
        self.assertEqual([p["duration"] for p in back["fixations"]], [0.3, 0.2])
        for key in ("x1", "y1", "x2", "y2"):
            self.assertAlmostEqual(back["boxes"][0][key], case["boxes"][0][key], delta=0.5)
        self.assertEqual(back["report"]["impression"], "Cardiomegaly.")
        self.delayDisplay("Test passed")
