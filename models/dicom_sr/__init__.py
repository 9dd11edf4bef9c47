"""GazeLabel records in standard DICOM: a Case as a TID 1500 Structured Report and back, heatmaps as
Parametric Maps (or Secondary Capture overlays). See :mod:`models.dicom_sr.writer` for the layout."""

from models.dicom_sr.parametric_map import heatmap_to_parametric_map, heatmap_to_secondary_capture
from models.dicom_sr.reader import SRError, as_stored, label_tag, sr_to_case
from models.dicom_sr.writer import case_to_sr, sr_series_uid, write_sr

__all__ = ["SRError", "as_stored", "case_to_sr", "heatmap_to_parametric_map", "heatmap_to_secondary_capture",
           "label_tag", "sr_series_uid", "sr_to_case", "write_sr"]
