"""Case -> DICOM Comprehensive SR (TID 1500 Measurement Report) that references the source radiograph.

What goes where (codes in :mod:`models.dicom_sr.codes`):

- the document's observer: the annotator (person observer; ``login_name`` keeps the exact annotator id) for a
  label, or GazeLabel's models (device observer; model name = the checkpoints' stamps) for a prediction;
- Imaging Measurements, one Measurement Group each, named by its Tracking Identifier:
  - ``finding <name>`` (TID 1501): the CheXpert label as a qualitative evaluation (finding -> Present / Absent
    / Undetermined) and the model's score as a Probability measurement;
  - ``box <i>`` (TID 1410): the box as a closed POLYLINE on the source image, its finding as finding type, its
    region as finding site (location + laterality), its score as a Probability measurement;
  - ``fixation <i>`` (TID 1410): the fixation as a POINT, its start and duration (seconds) as measurements;
    a reader of ``Case.readers`` gets its own observer context (HAS OBS CONTEXT person observer whose login
    name is the reader's key), the document's observer owns ``Case.fixations``;
  - ``coverage <key>`` (TID 1501): the regions of ``Case.coverage[key]`` as finding sites;
- Qualitative Evaluations (TID 1500's text and code container): the case id, the label tag, whether the image
  is synthetic, its view and source; the report's FINDINGS and IMPRESSION texts exactly as written; and one
  ``Finding`` text item per evidence link holding its sentence, with the sentence index, the finding and the
  region as properties and INFERRED FROM by-reference links to the box's and the fixations' groups.

Coordinates: DICOM SCOORD pixel space has (0, 0) at the top-left corner of the top-left pixel, as the Case
does, so points are written unchanged; SCOORD stores 32-bit floats, NUM values decimal strings (16 chars);
:func:`models.dicom_sr.reader.as_stored` gives the Case exactly as an SR keeps it.

What an SR does not carry: ``Case.extra``, the image path, and of a prediction everything but the scores,
the uncertainty and the first scanpath (``decision``, ``timings``, ``report_writer`` and other samples stay
in the JSON).
"""

from __future__ import annotations

import functools
import io
import warnings
from typing import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from models.dicom_sr import codes as C
from models.imaging import dicom_spacing
from models.schema import Case, CaseError, Fixation

MANUFACTURER = "GazeLabel"
SERIES_DESCRIPTION = "GazeLabel {kind} ({tag})"


def _tracking(identifier: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=identifier)


def _site(region: str) -> hd.sr.FindingSite:
    location, laterality = C.REGION_CODES[region]
    return hd.sr.FindingSite(anatomic_location=location.code, laterality=laterality.code if laterality else None)


def _probability(value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=C.PROBABILITY.code, value=float(value), unit=C.PROBABILITY_UNIT)


def _person(name: str) -> hd.sr.ObserverContext:
    # A PN value cannot hold "\\" or more than 4 "^"; the exact id travels as the login name.
    shown = name.replace("\\", " ").replace("^", " ").replace("=", " ")[:60].strip() or "annotator"
    shown += "^"  # one component: the family name (a bare single word is ambiguous in PN)
    return hd.sr.ObserverContext(observer_type=codes.DCM.Person,
                                 observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                                     name=shown, login_name=name))


def _device(models: dict[str, str]) -> hd.sr.ObserverContext:
    model_name = "; ".join(f"{k}={v}" for k, v in sorted(models.items()))[:64] or "GazeLabel"
    return hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                 observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                                     uid=generate_uid(entropy_srcs=["gazelabel-models", model_name]),
                                     name="GazeLabel", manufacturer_name=MANUFACTURER, model_name=model_name))


def _fixation_group(f: Fixation, index: int, source: hd.sr.SourceImageForRegion,
                    observer: hd.sr.ObserverContext | None) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(f"fixation {index}"),
        referenced_region=hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POINT,
                                            graphic_data=np.array([[f.x, f.y]], dtype=np.float64), source_image=source),
        measurements=[hd.sr.Measurement(name=C.START_TIME.code, value=float(f.t), unit=C.SECONDS),
                      hd.sr.Measurement(name=C.DURATION.code, value=float(f.duration), unit=C.SECONDS)])
    if observer is not None:
        group[0].ContentSequence.extend(observer)
    return group


def _text(concept: C.Coded, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=concept.code, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def check_matches_image(case: Case, image: Dataset) -> None:
    """The case must describe this image: same size (and the image must be a single-frame radiograph)."""
    rows, columns = int(getattr(image, "Rows", 0) or 0), int(getattr(image, "Columns", 0) or 0)
    if not rows or not columns:
        raise CaseError("image: the DICOM file has no Rows/Columns; give the radiograph the case describes")
    if (case.image.width, case.image.height) not in ((0, 0), (columns, rows)):
        raise CaseError(f"image: the case is {case.image.width}x{case.image.height} but the DICOM image is "
                        f"{columns}x{rows}; export the case against the radiograph it was made on")


def quiet(make):
    """Run ``make`` without highdicom's warnings about the source image's person names (not ours to fix)."""
    @functools.wraps(make)
    def run(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name.*")
            return make(*args, **kwargs)

    return run


@quiet
def case_to_sr(case: Case, image: Dataset, *, label_tag: str = "final", annotator: str | None = None,
               predecessor: Dataset | None = None, series_instance_uid: str | None = None,
               instance_number: int = 1) -> Dataset:
    """The Comprehensive SR of ``case`` on the source ``image`` (a pydicom dataset; pixels not needed).

    Args:
        annotator: the person who made the label (the document's observer). None with a predicted Case
            (``case.prediction`` set) makes the models the observer (device); None on a label uses "annotator".
        predecessor: the SR this one supersedes (same image, annotator and tag); referenced in the Predecessor
            Documents Sequence so the PACS keeps the history.
        series_instance_uid: the SR series (stable per image, annotator and tag, see
            :func:`models.dicom_sr.writer.sr_series_uid`); a new one when None.
    """
    check_matches_image(case, image)
    case = Case.from_dict(case.to_dict())  # a validated copy; the caller's Case is not touched
    is_prediction = case.prediction is not None and annotator is None
    observer = _device(case.prediction.models) if is_prediction else _person(annotator or "annotator")
    context = (hd.sr.ObservationContext(observer_device_context=observer) if is_prediction
               else hd.sr.ObservationContext(observer_person_context=observer))
    source = hd.sr.SourceImageForRegion.from_source_image(image)

    groups: list = []
    for name in sorted(set(case.findings) | set(case.scores), key=lambda n: list(C.FINDING_CODES).index(n)):
        code = C.FINDING_CODES[name].code
        evaluations = ([hd.sr.QualitativeEvaluation(name=code, value=C.PRESENCE[case.findings[name]].code)]
                       if name in case.findings else None)
        measurements = [_probability(case.scores[name])] if name in case.scores else None
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"finding {name}"), finding_type=code,
            qualitative_evaluations=evaluations, measurements=measurements))
    for i, b in enumerate(case.boxes):
        polyline = np.array([[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2], [b.x1, b.y1]], dtype=np.float64)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"box {i}"),
            referenced_region=hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=polyline,
                                                source_image=source),
            finding_type=C.FINDING_CODES[b.finding].code,
            finding_sites=[_site(b.region)] if b.region else None,
            measurements=[_probability(b.score)] if b.score is not None else None))
    for i, f in enumerate(case.fixations):
        groups.append(_fixation_group(f, i, source, None))
    for reader, fixations in case.readers.items():
        reader_context = _person(reader)
        for i, f in enumerate(fixations):
            groups.append(_fixation_group(f, i, source, reader_context))
    for key, regions in case.coverage.items():
        known = [r for r in regions if r in C.REGION_CODES]
        if len(known) != len(regions):
            bad = next(r for r in regions if r not in C.REGION_CODES)
            raise CaseError(f"coverage[{key!r}]: {bad!r} is not a region name; an SR codes regions, see models.vocab")
        group = hd.sr.MeasurementsAndQualitativeEvaluations(tracking_identifier=_tracking(f"coverage {key}"),
                                                            finding_type=C.COVERAGE.code,
                                                            finding_sites=[_site(r) for r in known] or None)
        groups.append(group)
    if is_prediction and case.prediction.uncertainty is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking("uncertainty"),
            measurements=[hd.sr.Measurement(name=C.UNCERTAINTY.code, value=float(case.prediction.uncertainty),
                                            unit=C.BITS_UNIT)]))

    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=C.IMAGING_PROCEDURE.code,
                                     imaging_measurements=groups)  # [] is an empty container; None trips highdicom 0.22
    root = report[0]
    at = next(i for i, item in enumerate(root.ContentSequence) if concept(item) == ("126010", "DCM"))
    if not groups:  # an empty container is not valid DICOM (Content Sequence is Type 1C)
        root.ContentSequence = hd.sr.ContentSequence([c for i, c in enumerate(root.ContentSequence) if i != at])
    root.ContentSequence.insert(at, _image_library(image))
    root.ContentSequence.append(_record_container(case, label_tag, case.prediction if is_prediction else None))

    kind = "prediction" if is_prediction else "label"
    # highdicom deep-copies, re-parses and searches the whole content tree to find the evidence (1.3 s of a
    # 2 s build for ~120 fixations); the only image reference is the library entry, so the document is made
    # around the library alone and given its full content afterwards (then re-read as plain datasets).
    stub = hd.sr.ContainerContentItem(name=root.ConceptNameCodeSequence[0], template_id="1500")
    stub.ContentSequence = hd.sr.ContentSequence([item for item in root.ContentSequence
                                                  if concept(item) == ("111028", "DCM")])
    sr = hd.sr.ComprehensiveSR(
        evidence=[with_type2(image)], content=stub, series_instance_uid=series_instance_uid or hd.UID(), series_number=9001,
        sop_instance_uid=hd.UID(), instance_number=instance_number, manufacturer=MANUFACTURER,
        is_complete=label_tag == "final", is_final=False, is_verified=False,
        previous_versions=[predecessor] if predecessor is not None else None,
        series_description=SERIES_DESCRIPTION.format(kind=kind, tag=label_tag)[:64],
        coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
            designator=C.LOCAL_SCHEME, name=C.LOCAL_SCHEME_NAME, responsible_organization="GazeLabel")],
        manufacturer_model_name="GazeLabel", software_versions=_version())
    Dataset.__setattr__(sr, "ContentSequence", DicomSequence(list(root.ContentSequence)))
    sr = _plain(sr)
    _link_evidence(sr, case)
    return sr


def _encoded(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, write_like_original=False)
    return buffer.getvalue()


def _plain(sr: Dataset) -> Dataset:
    """The document as plain pydicom datasets (highdicom's content items refuse by-reference items, which
    have no value type)."""
    import pydicom

    return pydicom.dcmread(io.BytesIO(_encoded(sr)))


# Patient and study attributes the SR copies from its evidence; Type 2 (present, may be empty) in the image
# IODs too, but not every file has them.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")


def with_type2(image: Dataset) -> Dataset:
    missing = [k for k in TYPE2_COPIED if k not in image]
    if not missing:
        return image
    import copy

    filled = copy.copy(image)
    for keyword in missing:
        setattr(filled, keyword, "")
    return filled


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gazelabel")
    except metadata.PackageNotFoundError:
        return "0"



def _image_library(image: Dataset) -> hd.sr.ContainerContentItem:
    """TID 1600 Image Library with the source radiograph and its size, orientation and spacing.

    Written here because highdicom's builder requires ImagerPixelSpacing and PatientOrientation, which many
    CR files (pydicom-data's real one included) lack; only attributes the image has are described."""
    from highdicom.sr.templates import _get_coded_modality

    acq = hd.sr.RelationshipTypeValues.HAS_ACQ_CONTEXT
    pixels = Code("{pixels}", "UCUM", "pixels")
    descriptors = [hd.sr.CodeContentItem(name=codes.DCM.Modality, value=_get_coded_modality(image.SOPClassUID),
                                         relationship_type=acq),
                   hd.sr.NumContentItem(name=codes.DCM.PixelDataRows, value=int(image.Rows), unit=pixels,
                                        relationship_type=acq),
                   hd.sr.NumContentItem(name=codes.DCM.PixelDataColumns, value=int(image.Columns), unit=pixels,
                                        relationship_type=acq)]
    orientation = list(getattr(image, "PatientOrientation", None) or [])
    if len(orientation) == 2:
        descriptors += [hd.sr.TextContentItem(name=codes.DCM.PatientOrientationRow, value=str(orientation[0]),
                                              relationship_type=acq),
                        hd.sr.TextContentItem(name=codes.DCM.PatientOrientationColumn, value=str(orientation[1]),
                                              relationship_type=acq)]
    spacing = dicom_spacing(image)
    if spacing is not None:
        mm = codes.UCUM.Millimeter
        descriptors += [hd.sr.NumContentItem(name=codes.DCM.HorizontalPixelSpacing, value=float(spacing[1]), unit=mm,
                                             relationship_type=acq),
                        hd.sr.NumContentItem(name=codes.DCM.VerticalPixelSpacing, value=float(spacing[0]), unit=mm,
                                             relationship_type=acq)]
    entry = hd.sr.ImageContentItem(name=Code("260753009", "SCT", "Source"),
                                   referenced_sop_class_uid=image.SOPClassUID,
                                   referenced_sop_instance_uid=image.SOPInstanceUID,
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    entry.ContentSequence = hd.sr.ContentSequence(descriptors)
    group = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibraryGroup,
                                       relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    group.ContentSequence = hd.sr.ContentSequence([entry])
    library = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibrary,
                                         relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    library.ContentSequence = hd.sr.ContentSequence([group])
    return library


def _record_container(case: Case, label_tag: str, prediction) -> hd.sr.ContainerContentItem:
    """The Qualitative Evaluations container: who/what this record is, and the report."""
    container = hd.sr.ContainerContentItem(name=C.QUALITATIVE_EVALUATIONS.code,
                                          relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    items = [_text(C.CASE_ID, case.id), _text(C.LABEL_TAG, label_tag),
             hd.sr.CodeContentItem(name=C.SYNTHETIC_IMAGE.code, value=(C.YES if case.image.synthetic else C.NO).code,
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
    for name, value in ((C.IMAGE_VIEW, case.image.view), (C.SOURCE_DATASET, case.source.dataset),
                           (C.SOURCE_REF, case.source.ref), (C.SOURCE_MODEL, case.source.model)):
        if value is not None:
            items.append(_text(name, value))
    if prediction is not None:
        items += [_text(C.MODEL_STAMP, f"{family}={stamp}") for family, stamp in prediction.models.items()]
        items.append(hd.sr.CodeContentItem(name=C.SYNTHETIC_MODELS.code,
                                           value=(C.YES if prediction.synthetic else C.NO).code,
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    if case.report is not None and (case.report.findings or case.report.impression):
        # TEXT values are Type 1: an empty section is left out (a report with no text at all is not written)
        for name, text in ((C.FINDINGS_TEXT, case.report.findings), (C.IMPRESSION_TEXT, case.report.impression)):
            if text:
                items.append(_text(name, text))
        from models.report.evidence import report_sentences

        sentences = report_sentences(case.report)
        for e in case.report.evidence:
            sentence = sentences[e.sentence] if e.sentence < len(sentences) else ""
            item = _text(C.FINDING, sentence or "(no sentence)")
            children = [hd.sr.NumContentItem(name=C.SENTENCE_INDEX.code, value=e.sentence, unit=C.INDEX_UNIT,
                                             relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES)]
            if e.finding is not None:
                children.append(hd.sr.CodeContentItem(name=C.FINDING.code, value=C.FINDING_CODES[e.finding].code,
                                                      relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES))
            if e.region is not None:
                location, laterality = C.REGION_CODES[e.region]
                site = hd.sr.CodeContentItem(name=C.FINDING_SITE.code, value=location.code,
                                             relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES)
                if laterality is not None:
                    site.ContentSequence = hd.sr.ContentSequence([hd.sr.CodeContentItem(
                        name=C.LATERALITY.code, value=laterality.code,
                        relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD)])
                children.append(site)
            item.ContentSequence = hd.sr.ContentSequence(children)
            items.append(item)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def concept(item: Dataset) -> tuple[str, str] | None:
    """``(code value, scheme)`` of a content item's concept name, or None."""
    seq = getattr(item, "ConceptNameCodeSequence", None)
    return (str(seq[0].CodeValue), str(seq[0].CodingSchemeDesignator)) if seq else None


def tracking_identifier(group: Dataset) -> str | None:
    """The Tracking Identifier text of a measurement group container, if it has one."""
    for child in getattr(group, "ContentSequence", []):
        if concept(child) == ("112039", "DCM"):
            return str(child.TextValue)
    return None


def _link_evidence(sr: Dataset, case: Case) -> None:
    """Add INFERRED FROM by-reference links from each evidence item to its box's and fixations' groups.

    Referenced Content Item Identifiers are 1-based positions from the root, so they are computed on the
    finished document."""
    if case.report is None or not case.report.evidence:
        return
    root = sr.ContentSequence
    measurements_at = next((i for i, item in enumerate(root) if concept(item) == ("126010", "DCM")), None)
    if measurements_at is None:
        return
    positions: dict[str, list[int]] = {}
    for j, group in enumerate(root[measurements_at].ContentSequence):
        ident = tracking_identifier(group)
        if ident is not None and not _has_own_observer(group):
            positions[ident] = [1, measurements_at + 1, j + 1]
    record = next(item for item in root if concept(item) == C.QUALITATIVE_EVALUATIONS.key)
    evidence_items = [item for item in record.ContentSequence if concept(item) == C.FINDING.key]
    for item, e in zip(evidence_items, case.report.evidence):
        targets = ([f"box {e.box}"] if e.box is not None else []) + [f"fixation {k}" for k in e.fixations]
        for target in targets:
            link = Dataset()
            link.RelationshipType = "INFERRED FROM"
            link.ReferencedContentItemIdentifier = positions[target]
            item.ContentSequence.append(link)


def _has_own_observer(group: Dataset) -> bool:
    return any(getattr(c, "RelationshipType", "") == "HAS OBS CONTEXT" and concept(c) == ("121005", "DCM")
               for c in getattr(group, "ContentSequence", []))


def sr_series_uid(image_uid: str, annotator: str, label_tag: str) -> str:
    """The SR series of one image, annotator and tag: the same on every save and every server, so the
    versions of one label stay together in the PACS."""
    return generate_uid(entropy_srcs=["gazelabel-sr", image_uid, annotator, label_tag])


def write_sr(sr: Dataset, path) -> None:
    """Write a DICOM object (SR, Parametric Map, overlay) atomically."""
    from models.files import atomic_write

    atomic_write(path, _encoded(sr))


def evidence_images(sr: Dataset) -> Sequence[tuple[str, str, str]]:
    """(study, series, SOP instance) UIDs of the images an SR references as evidence."""
    out = []
    for study in getattr(sr, "CurrentRequestedProcedureEvidenceSequence", []):
        for series in getattr(study, "ReferencedSeriesSequence", []):
            for sop in getattr(series, "ReferencedSOPSequence", []):
                out.append((str(study.StudyInstanceUID), str(series.SeriesInstanceUID), str(sop.ReferencedSOPInstanceUID)))
    return out
