"""`gazelabel inspect PATH`: summarise an image, a case JSON or a dataset as a table (or JSON).

- image (DICOM, PNG/JPG, NIfTI ...): format, size, spacing, photometric, view, stored and loaded value range;
- case JSON: findings, boxes, fixations, readers, report length, image file, validation result
  (exit status 1 when the case does not validate);
- dataset (case store, REFLACX, EGD-CXR, MIMIC-Eye folder, ``NLMCXR_reports.tgz`` or ``iu-xray``): detected
  format, cases, splits, cases with gaze, finding prevalence, warnings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="image file, case JSON, dataset folder, NLMCXR_reports.tgz, or 'iu-xray'")
    p.add_argument("--images", help="image root (MIMIC-CXR or MIMIC-CXR-JPG) for REFLACX, EGD-CXR and MIMIC-Eye")
    p.add_argument("--warnings", type=int, default=5, metavar="N", help="dataset warnings to print (default 5; all with -1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")


# ------------------------------------------------------------------------------------------------ what is it
def kind_of(path: str) -> str:
    """"image", "case" or "dataset"; FileNotFoundError for a path that does not exist."""
    from models.datasets import IU_KEYWORD

    if path == IU_KEYWORD:
        return "dataset"
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    name = p.name.lower()
    if p.is_dir() or name.endswith(".tgz") or name == "dataset.json":
        return "dataset"
    if name.endswith(".json"):
        return "case"
    if name.endswith(IMAGE_SUFFIXES):
        return "image"
    with open(p, "rb") as fh:
        if fh.read(132)[128:132] == b"DICM":
            return "image"
    raise ValueError(f"{p}: not an image, a case JSON or a dataset (expected a DICOM/PNG/JPG/NIfTI image, "
                     f"a .json case, a dataset folder, NLMCXR_reports.tgz or 'iu-xray')")


# ------------------------------------------------------------------------------------------------ image
def _stored_range(path: Path, fmt: str) -> str | None:
    """Range of the values as stored in the file (before windowing), with the DICOM bit depth."""
    import numpy as np

    if fmt == "dicom":
        import pydicom

        ds = pydicom.dcmread(str(path))
        raw = ds.pixel_array
        return f"{raw.min()}..{raw.max()} ({ds.get('BitsStored', '?')}-bit stored, {raw.dtype})"
    if fmt in ("png", "jpg", "jpeg", "tif", "tiff", "bmp"):
        from PIL import Image

        with Image.open(path) as im:
            raw = np.asarray(im)
            return f"{raw.min()}..{raw.max()} (mode {im.mode}, {raw.dtype})"
    return None


def inspect_image(path: str) -> dict:
    from models.imaging import read_image

    img = read_image(path)
    meta = img.meta
    fmt = meta.get("format", "?")
    arr = img.array
    spacing = f"{img.spacing_mm[0]:.4g} x {img.spacing_mm[1]:.4g} mm (row x col)" if img.spacing_mm else "unknown"
    summary = {
        "kind": "image",
        "path": str(Path(path).resolve()),
        "format": fmt,
        "size": f"{img.width} x {img.height} px (W x H)",
        "spacing": spacing,
        "photometric": meta.get("photometric") or meta.get("mode") or "-",
        "view": meta.get("view") or "-",
    }
    if fmt == "dicom":
        summary["modality"] = meta.get("modality") or "-"
        summary["transfer syntax"] = meta.get("transfer_syntax") or "-"
    stored = _stored_range(Path(path), fmt)
    if stored:
        summary["stored values"] = stored
    summary["loaded values"] = f"{arr.min():.3f}..{arr.max():.3f}, mean {arr.mean():.3f} (float32, bone bright)"
    return summary


# ------------------------------------------------------------------------------------------------ case
def inspect_case(path: str) -> dict:
    from models.schema import Case, CaseError

    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CaseError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CaseError(f"{p}: a case JSON must be an object, got {type(data).__name__}")
    try:
        case, validation = Case.from_dict(data), "ok"
    except CaseError as e:
        case, validation = None, f"FAILED: {e}"
    summary = {"kind": "case", "path": str(p.resolve()), "validation": validation}
    if case is None:
        # Counts from the raw JSON so a broken label still shows what it holds.
        for key in ("id", "findings", "boxes", "fixations", "readers"):
            value = data.get(key)
            summary[key] = value if key == "id" else (len(value) if isinstance(value, (list, dict)) else "-")
        return summary
    image = case.image
    image_file = "-"
    if image.path:
        # Relative paths: beside the JSON, or at the case-store root (<root>/cases/, <root>/labels/<tag>/).
        bases = [p.parent, p.parent.parent, p.parent.parent.parent]
        candidates = [Path(image.path)] if Path(image.path).is_absolute() else [b / image.path for b in bases]
        found = next((c for c in candidates if c.is_file()), None)
        image_file = f"{found.resolve()} (found)" if found else f"{image.path} (MISSING)"
    positives = case.positive_findings()
    uncertain = [f for f, v in case.findings.items() if v == -1]
    negatives = [f for f, v in case.findings.items() if v == 0]
    fix_time = sum(f.duration for f in case.fixations)
    report = case.report.text if case.report else ""
    summary.update({
        "id": case.id,
        "synthetic": "yes (SYNTHETIC data)" if image.synthetic else "no",
        "source": " / ".join(str(v) for v in (case.source.dataset, case.source.ref, case.source.model) if v) or "-",
        "image": f"{image.width} x {image.height} px" + (f", view {image.view}" if image.view else ""),
        "image file": image_file,
        "findings": f"{len(positives)} positive, {len(negatives)} negative, {len(uncertain)} uncertain "
                    f"of {len(case.findings)} labelled",
        "positive": ", ".join(positives) or "-",
        "uncertain": ", ".join(uncertain) or "-",
        "scores": len(case.scores),
        "boxes": f"{len(case.boxes)}" + (f" ({', '.join(sorted({b.finding for b in case.boxes}))})" if case.boxes else ""),
        "fixations": f"{len(case.fixations)} ({fix_time:.2f} s of fixation)",
        "readers": f"{len(case.readers)}" + (f" ({', '.join(case.readers)})" if case.readers else ""),
        "report": f"{len(report.split())} words, {len(report)} characters",
        "evidence links": len(case.report.evidence) if case.report else 0,
    })
    return summary


# ------------------------------------------------------------------------------------------------ dataset
def inspect_dataset(path: str, images: str | None) -> dict:
    from models.datasets import detect_format, open_source
    from models.vocab import FINDINGS

    if Path(path).name == "dataset.json":
        path = str(Path(path).parent)
    fmt = detect_format(path)
    source = open_source(path, images=images)
    cases = source.cases
    split_names = ["train", "val", "test"] + [s for s in source.splits if s not in ("train", "val", "test")]
    splits = {s: len(source.split(s)) for s in split_names}
    prevalence = []
    for name in FINDINGS:
        values = [c.findings[name] for c in cases if name in c.findings]
        pos, neg, unc = values.count(1), values.count(0), values.count(-1)
        if values:
            prevalence.append({"finding": name, "positive": pos, "negative": neg, "uncertain": unc,
                               "labelled": len(values), "positive_pct": round(100.0 * pos / max(len(cases), 1), 1)})
    summary = {
        "kind": "dataset",
        "path": path if path == "iu-xray" else str(Path(path).resolve()),
        "format": fmt,
        "name": source.name,
        "synthetic": "yes (SYNTHETIC data)" if source.synthetic else "no",
        "cases": len(cases),
        "splits": ", ".join(f"{s} {n}" for s, n in splits.items()),
        "with gaze": sum(1 for c in cases if c.fixations),
        "with other readers": sum(1 for c in cases if c.readers),
        "fixations (mean per gaze case)": _mean([len(c.fixations) for c in cases if c.fixations]),
        "with boxes": sum(1 for c in cases if c.boxes),
        "with report": sum(1 for c in cases if c.report and c.report.text),
        "with image file": sum(1 for c in cases if c.image.path),
        "warnings": len(source.warnings),
        "prevalence": prevalence,
        "dropped": dict(source.dropped),
        "warning list": source.warnings,
    }
    if fmt == "iu-xray":
        from models.datasets.iu_xray import read_reports, report_counts

        counts = report_counts(read_reports(None if path == "iu-xray" else path))
        summary["archive"] = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
        summary["split rule"] = "R2Gen selection, 7:1:2 hash of study id (not R2Gen's assignment)"
    return summary


def _mean(values: list[int]) -> str:
    return f"{sum(values) / len(values):.1f}" if values else "-"


# ------------------------------------------------------------------------------------------------ output
def format_table(summary: dict, max_warnings: int = 5) -> str:
    rows = [(k, v) for k, v in summary.items() if k not in ("prevalence", "warning list", "dropped")]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if summary.get("prevalence"):
        lines += ["", f"{'finding':<28} {'pos':>6} {'neg':>6} {'unc':>6} {'% pos':>6}"]
        for p in summary["prevalence"]:
            lines.append(f"{p['finding']:<28} {p['positive']:>6} {p['negative']:>6} {p['uncertain']:>6} {p['positive_pct']:>6}")
    if summary.get("dropped"):
        lines += ["", "left out by the reader (and why):"]
        lines += [f"  {n:>6}  {reason}" for reason, n in summary["dropped"].items()]
    warnings = summary.get("warning list") or []
    if warnings and max_warnings != 0:
        shown = warnings if max_warnings < 0 else warnings[:max_warnings]
        lines += ["", f"warnings ({len(shown)} of {len(warnings)} shown):"] + [f"  {w}" for w in shown]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    kind = kind_of(args.path)
    if kind == "image":
        summary = inspect_image(args.path)
    elif kind == "case":
        summary = inspect_case(args.path)
    else:
        summary = inspect_dataset(args.path, args.images)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(format_table(summary, args.warnings))
    return 1 if str(summary.get("validation", "ok")).startswith("FAILED") else 0
