"""GazeLabel: the MONAI Label app for gaze-guided chest X-ray AI.

Serves five infer tasks on 2D radiographs (``gaze_classifier``, ``scanpath``, ``report``, ``pipeline`` and
``vqa``, which answers ``params.question`` in ``case.prediction.answer``; each answers a ``models.schema`` Case
under ``"case"`` and, for ``output=image``, the heatmap as a label image), four train tasks (classifier,
scanpath, report, vqa) that retrain on the annotators' Case labels (vqa over the server's published
classifier and scanpath models), an MC-dropout
``uncertainty`` and ``diverse`` active-learning strategies (plus ``random`` and ``first``) and an ``uncertainty`` scoring method.

Studies are a local case store folder, indexed in a database (SQLite in the store, or the SQLAlchemy URL in
``GAZELABEL_DB``, e.g. PostgreSQL shared by several servers; :mod:`.lib.datastores.database`), or a DICOMweb
URL (CR/DX series, e.g. Orthanc). Next-sample requests claim the image they hand out for the request's
``client_id`` (:mod:`.lib.activelearning.claims`). App conf keys (``--conf key value``): ``models_dir``
(default ``$GAZELABEL_HOME/models``), ``dicomweb_cache``.
Start it with ``gazelabel serve`` (hardened server, see ``monailabel_app/launcher.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import ImageNotFoundException, MONAILabelError, MONAILabelException
from monailabel.tasks.activelearning.first import First

from models.files import remove_partials
from models.quiet import quiet_libraries
from models.runtime import home
from models.vocab import FINDINGS
from monailabel_app.lib.activelearning.claims import UnclaimedRandom, claimed_sample
from monailabel_app.lib.activelearning.diverse import DiverseUncertaintyStrategy
from monailabel_app.lib.activelearning.uncertainty import UncertaintyStrategy
from models.families import FAMILIES
from models.pipeline import TASKS
from monailabel_app.lib.configs.models import ModelCache
from monailabel_app.lib.datastores.database import IndexedCaseDatastore
from monailabel_app.lib.datastores.records import Records
from monailabel_app.lib.ids import check_id
from monailabel_app.lib.sessions import SafeSessions
from monailabel_app.lib.infers.base import GazeInferTask
from monailabel_app.lib.scoring.uncertainty import UncertaintyScoring
from monailabel_app.lib.trainers.family import DEFAULTS as TRAIN_DEFAULTS, FamilyTrainTask, clean_stale_training, finite

class GazeLabelApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        quiet_libraries(verbose=os.environ.get("GAZELABEL_VERBOSE") == "1")
        conf = conf or {}
        self.models_dir = Path(conf.get("models_dir") or home() / "models").resolve()
        # Leftovers of trainings and checkpoint writes that were killed (their processes are gone).
        clean_stale_training(self.models_dir / ".training")
        remove_partials(self.models_dir, older_than_s=600, recursive=False)
        self.models = ModelCache(self.models_dir)
        self.models.preload()  # before any request thread can import transformers/peft concurrently
        self.records: Records | None = None  # set by init_datastore, which the base constructor calls first
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="GazeLabel",
            description="Gaze-guided chest X-ray findings, scanpaths and reports",
            version="0.1.0",
            labels=list(FINDINGS),
        )

    def init_datastore(self):
        if self.studies.startswith(("http://", "https://")):
            return self._dicomweb_datastore()
        self.records = Records(self.studies)
        return IndexedCaseDatastore(
            self.studies,
            db_url=os.environ.get("GAZELABEL_DB") or None,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def _dicomweb_datastore(self):
        from dicomweb_client.session_utils import create_session_from_user_pass
        from monailabel.datastore.dicom import DICOMwebClientX

        from monailabel_app.lib.datastores.dicomweb import DicomwebCaseDatastore

        url = self.studies.rstrip("/")
        user = settings.MONAI_LABEL_DATASTORE_USERNAME or settings.MONAI_LABEL_DICOMWEB_USERNAME
        password = settings.MONAI_LABEL_DATASTORE_PASSWORD or settings.MONAI_LABEL_DICOMWEB_PASSWORD
        session = create_session_from_user_pass(user, password) if user and password else None
        client = DICOMwebClientX(url=url, session=session, qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
                                 wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
                                 stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX)
        cache = Path(self.conf.get("dicomweb_cache") or home() / "dicomweb_cache" / hashlib.md5(url.encode(), usedforsecurity=False).hexdigest())
        self.records = Records(str(cache))
        return DicomwebCaseDatastore(client, str(cache))

    def on_init_complete(self):
        super().on_init_complete()
        # timeloop logs every scheduler tick to its own stdout handler; send it to the log file only.
        timeloop = logging.getLogger("timeloop")
        for handler in list(timeloop.handlers):
            timeloop.removeHandler(handler)
        timeloop.propagate = True

    def _load_sessions(self, load=False):
        if not load:
            return None
        return SafeSessions(settings.MONAI_LABEL_SESSION_PATH, settings.MONAI_LABEL_SESSION_EXPIRY)

    def next_sample(self, request):
        """MONAI Label's next sample, with the chosen image claimed for the request's ``client_id`` on an
        indexed datastore (:func:`~monailabel_app.lib.activelearning.claims.claimed_sample`)."""
        datastore = self.datastore()
        if not hasattr(datastore, "claim"):
            return super().next_sample(request)
        name = request.get("strategy") or "random"
        strategy = self._strategies.get(name)
        if strategy is None:
            raise MONAILabelException(MONAILabelError.APP_INIT_ERROR, f"no active-learning strategy {name!r}; use one "
                                      f"of {', '.join(sorted(self._strategies))}")
        result = claimed_sample(strategy, request, datastore)
        if not result or not result.get("id"):
            return {}
        return {**result, "path": datastore.get_image_uri(result["id"])}

    def _record(self, image_id: str):
        return self.records.shared_case(image_id)  # read-only for the infer tasks

    def image_roots(self) -> list[str]:
        """The folders an inference may read an image from: the store (or DICOMweb cache), the session
        store and the upload folder. Anything else in ``request["image"]`` is refused."""
        from monailabel_app.routes import upload_dir

        roots = [str(self.records.store.root), str(upload_dir())]
        if self._sessions is not None:
            roots.append(self._sessions.store_path)
        return [os.path.realpath(r) for r in roots]

    def infer(self, request, datastore=None):
        """MONAI Label's infer with one more rule: ``request["image"]`` is an image id of the datastore, or a
        file that the GazeLabel routes resolved inside :meth:`image_roots`; never any other path.

        MONAI Label 0.8.5 treats an existing path as a path, so ``image`` (or ``params.image``) could name
        any file the server can read, and a safe-looking id could name a file in the working directory."""
        image = request.get("image")
        if not isinstance(image, str) or not image:
            raise ImageNotFoundException("infer: no image given")
        if os.path.isabs(image):
            real = os.path.realpath(image)
            if not any(os.path.commonpath([root, real]) == root for root in self.image_roots()):
                raise ImageNotFoundException(f"no image with id {image!r} in the datastore")
        else:
            uri = (datastore or self.datastore()).get_image_uri(check_id(image))
            if not uri:
                raise ImageNotFoundException(f"no image with id {image!r} in the datastore")
            request = {**request, "image": uri}
        return super().infer(request, datastore)

    def init_infers(self):
        store = getattr(self.datastore(), "store_prediction", None)  # a PACS datastore can keep predictions
        return {name: GazeInferTask(task, self.models, self._record, store) for name, task in TASKS.items()}

    def init_trainers(self):
        # Every family with server training defaults (all four) retrains from the labels with POST /train/<task>.
        return {family.task: FamilyTrainTask(family, self.models_dir, self.records) for family in FAMILIES.values()
                if family.name in TRAIN_DEFAULTS}

    def init_strategies(self):
        return {"uncertainty": UncertaintyStrategy(self.models), "diverse": DiverseUncertaintyStrategy(self.models),
                "random": UnclaimedRandom(), "first": First()}

    def init_scoring_methods(self):
        return {"uncertainty": UncertaintyScoring(self.models)}

    def info(self):
        # A NaN anywhere (e.g. an undefined AUC in train stats) makes /info/ a 500 for every client.
        return finite(super().info())
