"""A DICOMweb PACS (e.g. Orthanc) as the datastore for chest radiographs, with Case JSON labels kept locally.

MONAI Label's ``DICOMWebDatastore`` lists CT by default, converts series to NIfTI, stores final labels as
DICOM SEG and downloads dcmqi from GitHub at start (fails offline). None of that fits 2D CR/DX with JSON
labels, so this datastore:

- lists series whose Modality is CR or DX (QIDO-RS, one query per modality, cached for ``listing_ttl`` s);
  the image id is the SeriesInstanceUID;
- fetches the first instance of a series on demand (WADO-RS) into a local cache folder as ``<uid>.dcm``;
- writes every saved label back to the PACS as a DICOM Comprehensive SR (TID 1500, :mod:`models.dicom_sr`)
  with STOW-RS, before it is kept locally: the PACS is the system of record. The SRs of one image, annotator
  and tag form one SR series (a UID derived from the three); a re-save is the next instance of that series
  and names the previous one in its Predecessor Documents Sequence, so the history stays in the PACS;
- reads labels back from the PACS: the latest SR of each image and tag (highest Instance Number of its
  series; between annotators the latest content date and time) becomes the local Case JSON label
  (``labels/<tag>/<series uid>.json``), so a fresh server on the same PACS finds every label. SRs already
  read are remembered by SOP Instance UID in ``sr_index.json`` and not fetched again;
- on request (``store_in_pacs`` infer parameter) stores a prediction as an SR with the models as device
  observer and its heatmap as a Parametric Map;
- stores uploaded images in the PACS with STOW-RS after the same checks as the local store.

Locks: ``self._lock`` guards the remote listing and downloads and is always taken before the local index
lock ``self._mutex`` (:class:`CaseDatastore`), never after.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from typing import Any

import pydicom
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.exception import ImageNotFoundException

from models.files import atomic_json
from models.schema import CaseError

from ...parsing import RequestError
from ..ids import check_id
from .local import CaseDatastore
from .uploads import RADIOGRAPH_MODALITIES, check_image_upload

logger = logging.getLogger(__name__)

_STUDY, _SERIES, _SOP = "0020000D", "0020000E", "00080018"
_MODALITY, _PATIENT, _INSTANCE_NUMBER, _STUDY_DATE = "00080060", "00100020", "00200013", "00080020"
_SERIES_DESCRIPTION, _SOP_CLASS = "0008103E", "00080016"
SR_PREFIX = "GazeLabel label"
DEFAULT_ANNOTATOR = "annotator"


class PacsError(RequestError):
    """The PACS refused or could not be reached; HTTP 502. Nothing was saved locally either."""

    status = 502


def annotator_of(info: dict[str, Any] | None) -> str:
    """The annotator named in a label's params (``annotator``), else "annotator"."""
    name = (info or {}).get("annotator", DEFAULT_ANNOTATOR)
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise CaseError(f"params.annotator: a name of 1-64 characters is required, got {name!r}"[:200])
    return name.strip()


def _value(record: dict, tag: str, default: Any = "") -> Any:
    values = record.get(tag, {}).get("Value") or [default]
    return values[0]


class DicomwebCaseDatastore(CaseDatastore):
    """CR/DX series of a DICOMweb server as images; Case JSON labels in a local cache folder."""

    def __init__(self, client, cache_dir: str, modalities=RADIOGRAPH_MODALITIES, listing_ttl: float = 10.0,
                 write_back: bool = True):
        self._client = client
        self._modalities = tuple(modalities)
        self._listing_ttl = listing_ttl
        self._listing: dict[str, dict] = {}
        self._listing_ts = float("-inf")
        self._labels_ts = float("-inf")
        self._lock = threading.RLock()
        self._write_back = write_back
        self._sr_index_path = os.path.join(cache_dir, "sr_index.json")
        self._sr_index: dict[str, dict] = self._read_sr_index()
        self._pending: dict[str, Any] = {}  # SOP UID -> the Case of an SR a sync fetched, not yet applied
        super().__init__(cache_dir, extensions=("*.dcm",))
        if write_back:
            self.sync_labels()

    def name(self) -> str:
        return self._client.base_url

    def description(self) -> str:
        return f"DICOMweb {self._client.base_url} (Modality {'/'.join(self._modalities)})"

    # ---------------------------------------------------------------- remote listing
    def _series(self) -> dict[str, dict]:
        """SeriesInstanceUID -> {study, modality, patient_id, study_date}, refreshed every ``listing_ttl`` s."""
        with self._lock:
            if time.monotonic() - self._listing_ts > self._listing_ttl:
                listing = {}
                for modality in self._modalities:
                    for rec in self._client.search_for_series(search_filters={"Modality": modality}, get_remaining=True):
                        listing[str(_value(rec, _SERIES))] = {
                            "StudyInstanceUID": str(_value(rec, _STUDY)),
                            "Modality": str(_value(rec, _MODALITY, modality)),
                            "PatientID": str(_value(rec, _PATIENT)),
                            "StudyDate": str(_value(rec, _STUDY_DATE)),
                        }
                self._listing, self._listing_ts = listing, time.monotonic()
            return self._listing

    def list_images(self) -> list[str]:
        return sorted(self._series())

    def _local_final(self) -> set[str]:
        with self._mutex:
            return {k for k, v in self._datastore.objects.items() if v.labels.get(DefaultLabelTag.FINAL)}

    def get_labeled_images(self, label_tag=None, labels=None) -> list[str]:
        self._sync_if_stale()
        final = self._local_final()
        return [s for s in self.list_images() if s in final]

    def get_unlabeled_images(self, label_tag=None, labels=None) -> list[str]:
        self._sync_if_stale()
        final = self._local_final()
        return [s for s in self.list_images() if s not in final]

    def status(self) -> dict[str, Any]:
        # Not LocalDatastore.status: it would call list_images (remote, self._lock) while holding self._mutex,
        # the reverse of get_image_uri's order.
        with self._mutex:
            tags: dict[str, int] = {}
            for obj in self._datastore.objects.values():
                for tag in obj.labels:
                    tags[tag] = tags.get(tag, 0) + 1
        return {"total": len(self.list_images()), "completed": len(self.get_labeled_images()), "label_tags": tags}

    # ---------------------------------------------------------------- images
    def _fetch(self, series_uid: str) -> None:
        """Download the first instance of a series into the cache (WADO-RS) and register it."""
        meta = self._series().get(series_uid)
        if meta is None:
            raise ImageNotFoundException(f"no {'/'.join(self._modalities)} series {series_uid!r} on {self.name()}")
        study = meta["StudyInstanceUID"]
        instances = self._client.search_for_instances(study_instance_uid=study, series_instance_uid=series_uid)
        if not instances:
            raise ImageNotFoundException(f"series {series_uid!r} on {self.name()} has no instances")
        first = min(instances, key=lambda rec: int(_value(rec, _INSTANCE_NUMBER, 0) or 0))
        sop = str(_value(first, _SOP))
        dataset = self._client.retrieve_instance(study, series_uid, sop)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{series_uid}.dcm")
            dataset.save_as(path, write_like_original=False)
            info = {**meta, "SeriesInstanceUID": series_uid, "SOPInstanceUID": sop}
            super().add_image(series_uid, path, info)

    def get_image_uri(self, image_id: str) -> str:
        check_id(image_id)
        with self._lock:
            uri = super().get_image_uri(image_id)
            if uri and os.path.exists(uri):
                return uri
            if image_id not in self._series():
                return ""
            self._fetch(image_id)
            return super().get_image_uri(image_id)

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        check_id(image_id)
        return {**self._series().get(image_id, {}), **super().get_image_info(image_id)}

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Store an uploaded radiograph in the PACS (STOW-RS); the new image id is its SeriesInstanceUID."""
        import pydicom

        _, ext = self._to_id(os.path.basename(image_filename))
        check_image_upload(image_filename, ext)
        if ext.lower() != ".dcm":
            raise PermissionError(f"{self.name()} is a PACS: upload DICOM (CR/DX) files, not {ext!r}")
        dataset = pydicom.dcmread(image_filename)
        self._client.store_instances([dataset])
        with self._lock:
            self._listing_ts = float("-inf")
        return str(dataset.SeriesInstanceUID)

    def remove_image(self, image_id: str) -> None:
        raise PermissionError(f"{self.name()} is a PACS: images are not deleted through GazeLabel")

    # ---------------------------------------------------------------- labels
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Store the label's SR in the PACS (STOW-RS), then keep the Case JSON locally."""
        from models.dicom_sr import case_to_sr

        check_id(label_tag, "label tag")
        uri = self.get_image_uri(image_id)
        if not uri:
            raise ImageNotFoundException(f"no {'/'.join(self._modalities)} series {image_id!r} on {self.name()}")
        info = {**(label_info or {}), **self._image_uids(image_id)}
        if not self._write_back:
            return super().save_label(image_id, label_filename, label_tag, info)
        annotator = annotator_of(label_info)
        case = self._read_upload(image_id, label_filename)
        image = pydicom.dcmread(uri, stop_before_pixels=True)
        with self._lock:
            series_uid, number, predecessor = self._latest_sr(image, annotator, label_tag)
            sr = case_to_sr(case, image, label_tag=label_tag, annotator=annotator, predecessor=predecessor,
                            series_instance_uid=series_uid, instance_number=number + 1)
            self._stow([sr], f"the label of {image_id}")
            self._remember_sr(sr, image_id, label_tag, annotator)
        info["sr"] = {"SOPInstanceUID": str(sr.SOPInstanceUID), "SeriesInstanceUID": series_uid,
                      "InstanceNumber": number + 1, "annotator": annotator}
        return super().save_label(image_id, label_filename, label_tag, info)

    def _image_uids(self, image_id: str) -> dict[str, str]:
        """The study, series and SOP instance UIDs of a cached image (kept in every label's info)."""
        return {k: v for k, v in super().get_image_info(image_id).items() if k.endswith("InstanceUID")}

    def _read_upload(self, image_id: str, label_filename: str):
        from .uploads import read_label_upload

        return read_label_upload(label_filename, image_id, self._stored_size(image_id))

    def _stow(self, datasets, what: str) -> None:
        try:
            self._client.store_instances(datasets)
        except Exception as e:  # requests' HTTPError, connection errors: the PACS did not take it
            raise PacsError(f"{self.name()} did not store {what} ({type(e).__name__}: {str(e)[:200]}); nothing "
                            "was saved, try again") from None

    def _latest_sr(self, image, annotator: str, tag: str):
        """(SR series UID, highest Instance Number so far or 0, a reference to that SR or None)."""
        from pydicom.dataset import Dataset

        from models.dicom_sr import sr_series_uid

        series_uid = sr_series_uid(str(image.SOPInstanceUID), annotator, tag)
        try:
            found = self._client.search_for_instances(study_instance_uid=str(image.StudyInstanceUID),
                                                      series_instance_uid=series_uid)
        except Exception as e:
            raise PacsError(f"{self.name()} did not answer a search for earlier SRs ({type(e).__name__}); nothing "
                            "was saved, try again") from None
        if not found:
            return series_uid, 0, None
        latest = max(found, key=lambda rec: int(_value(rec, _INSTANCE_NUMBER, 0) or 0))
        ref = Dataset()
        ref.StudyInstanceUID, ref.SeriesInstanceUID = str(image.StudyInstanceUID), series_uid
        ref.SOPClassUID = str(_value(latest, _SOP_CLASS, "1.2.840.10008.5.1.4.1.1.88.33"))
        ref.SOPInstanceUID = str(_value(latest, _SOP))
        return series_uid, int(_value(latest, _INSTANCE_NUMBER, 0) or 0), ref

    # ---------------------------------------------------------------- labels from the PACS
    def _read_sr_index(self) -> dict[str, dict]:
        try:
            with open(self._sr_index_path, "rb") as f:
                data = json.loads(f.read())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _remember_sr(self, sr, image_id: str, tag: str, annotator: str) -> None:
        self._sr_index[str(sr.SOPInstanceUID)] = {
            "image": image_id, "tag": tag, "annotator": annotator, "series": str(sr.SeriesInstanceUID),
            "number": int(sr.InstanceNumber), "when": f"{sr.ContentDate}{sr.ContentTime}"}
        atomic_json(self._sr_index_path, self._sr_index)

    def _sync_if_stale(self) -> None:
        if self._write_back and time.monotonic() - self._labels_ts > self._listing_ttl:
            self.sync_labels()

    def sync_labels(self) -> int:
        """Make the local labels the latest SR of each image and tag in the PACS; returns how many changed.

        Only SRs not seen before are fetched (WADO-RS); an SR GazeLabel cannot read is logged and skipped."""
        from models.dicom_sr import SRError, label_tag, sr_to_case
        from models.dicom_sr.reader import document_observer
        from models.dicom_sr.writer import evidence_images

        with self._lock:
            try:
                records = self._client.search_for_instances(search_filters={"Modality": "SR"}, get_remaining=True,
                                                            fields=[_SERIES_DESCRIPTION, _INSTANCE_NUMBER])
            except Exception as e:
                logger.warning(f"{self.name()}: cannot list SRs ({type(e).__name__}: {str(e)[:200]}); labels not synced")
                return 0
            listing = self._series()
            for rec in records:
                sop = str(_value(rec, _SOP))
                if sop in self._sr_index:
                    continue
                if not str(_value(rec, _SERIES_DESCRIPTION, "")).startswith(SR_PREFIX):
                    self._sr_index[sop] = {"skipped": "not a GazeLabel label"}
                    continue
                try:
                    sr = self._client.retrieve_instance(str(_value(rec, _STUDY)), str(_value(rec, _SERIES)), sop)
                    images = [series for _, series, _ in evidence_images(sr) if series in listing]
                    tag = label_tag(sr)
                    if not images or not tag:
                        raise SRError("it references no radiograph of this PACS, or has no label tag")
                    case = sr_to_case(sr, case_id=images[0])  # or skipped here: a bad SR must not shadow a good one
                    self._sr_index[sop] = {"image": images[0], "tag": tag,
                                           "annotator": document_observer(sr) or DEFAULT_ANNOTATOR,
                                           "series": str(sr.SeriesInstanceUID), "number": int(sr.InstanceNumber),
                                           "when": f"{getattr(sr, 'ContentDate', '')}{getattr(sr, 'ContentTime', '')}"}
                    self._pending[sop] = case
                except (SRError, CaseError, ValueError, KeyError) as e:
                    logger.warning(f"{self.name()}: SR {sop} is not a label GazeLabel can read ({e}); skipped")
                    self._sr_index[sop] = {"skipped": str(e)[:200]}
                except Exception as e:  # the PACS failed mid-sync: try again next time
                    logger.warning(f"{self.name()}: cannot fetch SR {sop} ({type(e).__name__}); retried later")
            changed = self._apply_latest()
            atomic_json(self._sr_index_path, self._sr_index)
            self._labels_ts = time.monotonic()
            return changed

    def _apply_latest(self) -> int:
        """Write the latest SR of each (image, tag) as the local label where it is not that SR already."""
        from models.dicom_sr import sr_to_case

        latest: dict[tuple[str, str], tuple[tuple, str]] = {}
        for sop, entry in self._sr_index.items():
            if "image" not in entry:
                continue
            key = (entry["image"], entry["tag"])
            order = (entry.get("when", ""), entry.get("number", 0))
            if key not in latest or order > latest[key][0]:
                latest[key] = (order, sop)
        changed = 0
        for (image_id, tag), (_, sop) in latest.items():
            try:
                current = super().get_label_info(image_id, tag) if image_id in self._datastore.objects else {}
            except Exception:
                current = {}
            if (current.get("sr") or {}).get("SOPInstanceUID") == sop:
                continue
            case = self._pending.pop(sop, None)
            try:
                if case is None:  # seen by an earlier sync, but not (or no longer) the local label
                    entry = self._sr_index[sop]
                    study = self._series().get(image_id, {}).get("StudyInstanceUID", "")
                    case = sr_to_case(self._client.retrieve_instance(study, entry["series"], sop), case_id=image_id)
                if not self.get_image_uri(image_id):
                    continue
                self._keep_locally(image_id, tag, case, sop, self._sr_index[sop])
                changed += 1
            except Exception as e:
                logger.warning(f"{self.name()}: the label SR {sop} of {image_id} was not applied ({type(e).__name__}: "
                               f"{str(e)[:200]})")
        self._pending.clear()
        return changed

    def _keep_locally(self, image_id: str, tag: str, case, sop: str, entry: dict) -> None:
        width, height = self._stored_size(image_id)
        case.image.width, case.image.height = width, height
        case.image.path = case.image.path or f"{image_id}.dcm"
        info = {**self._image_uids(image_id), "annotator": entry.get("annotator", DEFAULT_ANNOTATOR),
                "sr": {"SOPInstanceUID": sop, "SeriesInstanceUID": entry["series"],
                       "InstanceNumber": entry.get("number", 0), "annotator": entry.get("annotator")}}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "label.json")  # not the id: a UID has dots, which read as suffixes
            with open(path, "w") as f:
                json.dump(case.to_dict(), f)
            super().save_label(image_id, path, tag, info)

    # ---------------------------------------------------------------- predictions to the PACS
    def store_prediction(self, image_id: str, case, heatmap) -> dict[str, Any]:
        """Store a predicted Case as an SR (device observer) and its heatmap as a Parametric Map."""
        from models.dicom_sr import case_to_sr, heatmap_to_parametric_map

        uri = self.get_image_uri(image_id)
        if not uri:
            raise ImageNotFoundException(f"no {'/'.join(self._modalities)} series {image_id!r} on {self.name()}")
        image = pydicom.dcmread(uri, stop_before_pixels=True)
        sr = case_to_sr(case, image, label_tag="prediction")
        stored = [sr]
        if heatmap is not None:
            stored.append(heatmap_to_parametric_map(heatmap, image))
        self._stow(stored, f"the prediction of {image_id}")
        with self._lock:
            self._sr_index[str(sr.SOPInstanceUID)] = {"skipped": "a prediction, not a label"}
            atomic_json(self._sr_index_path, self._sr_index)
        return {"sr": str(sr.SOPInstanceUID), **({"parametric_map": str(stored[1].SOPInstanceUID)} if heatmap is not None else {})}
