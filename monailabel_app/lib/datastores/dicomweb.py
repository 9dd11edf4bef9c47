"""A DICOMweb PACS (e.g. Orthanc) as the datastore for chest radiographs, with Case JSON labels kept locally.

MONAI Label's ``DICOMWebDatastore`` lists CT by default, converts series to NIfTI, stores final labels as
DICOM SEG and downloads dcmqi from GitHub at start (fails offline). None of that fits 2D CR/DX with JSON
labels, so this datastore:

- lists series whose Modality is CR or DX (QIDO-RS, one query per modality, cached for ``listing_ttl`` s);
  the image id is the SeriesInstanceUID;
- fetches the first instance of a series on demand (WADO-RS) into a local cache folder as ``<uid>.dcm``;
- keeps labels as Case JSON in that cache folder (``labels/<tag>/<series uid>.json``, with the study, series
  and SOP instance UIDs in the label info), so nothing is written to the PACS except uploaded images;
- stores uploaded images in the PACS with STOW-RS after the same checks as the local store.

Locks: ``self._lock`` guards the remote listing and downloads and is always taken before the local index
lock ``self._mutex`` (:class:`CaseDatastore`), never after.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.exception import ImageNotFoundException

from ..ids import check_id
from .local import CaseDatastore
from .uploads import RADIOGRAPH_MODALITIES, check_image_upload

_STUDY, _SERIES, _SOP = "0020000D", "0020000E", "00080018"
_MODALITY, _PATIENT, _INSTANCE_NUMBER, _STUDY_DATE = "00080060", "00100020", "00200013", "00080020"


def _value(record: dict, tag: str, default: Any = "") -> Any:
    values = record.get(tag, {}).get("Value") or [default]
    return values[0]


class DicomwebCaseDatastore(CaseDatastore):
    """CR/DX series of a DICOMweb server as images; Case JSON labels in a local cache folder."""

    def __init__(self, client, cache_dir: str, modalities=RADIOGRAPH_MODALITIES, listing_ttl: float = 10.0):
        self._client = client
        self._modalities = tuple(modalities)
        self._listing_ttl = listing_ttl
        self._listing: dict[str, dict] = {}
        self._listing_ts = float("-inf")
        self._lock = threading.RLock()
        super().__init__(cache_dir, extensions=("*.dcm",))

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
        final = self._local_final()
        return [s for s in self.list_images() if s in final]

    def get_unlabeled_images(self, label_tag=None, labels=None) -> list[str]:
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
        if not self.get_image_uri(image_id):
            raise ImageNotFoundException(f"no {'/'.join(self._modalities)} series {image_id!r} on {self.name()}")
        uids = {k: v for k, v in super().get_image_info(image_id).items() if k.endswith("InstanceUID")}
        return super().save_label(image_id, label_filename, label_tag, {**(label_info or {}), **uids})
