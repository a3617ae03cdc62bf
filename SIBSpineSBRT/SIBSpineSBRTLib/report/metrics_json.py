"""``metrics.json``: the machine-readable review result that scripts and later runs rely on.

Schema (format "sibspine-metrics/2")::

    {"format": "sibspine-metrics/2", "case": str, "level": "T8" | "T12-L2", "protocol": str,
     "protocol_sha256": str, "prescription": {...},
     "verdict": "pass"|"fail"|"incomplete",            # over the confirmed rows only
     "advisory_verdict": "pass"|"fail"|"incomplete"|null,  # over the advisory (unconfirmed) rows
     "deviations": [str],                              # empty for a protocol review
     "problems": [str],                                # review-level reasons that stop a pass
     "not_contoured": [str], "not_evaluated": [str],
     "rows": [{"structure": "GTV", "metric": "D50%", "value": 43.1234 | null, "judged_value": 43.1 | null,
               "precision": 0.1, "unit": "Gy", "optimal": str | null, "mandatory": str | null,
               "status": "optimal"|"acceptable"|"met"|"fail"|"not_evaluable"|"not_applicable",
               "confirmed": bool, "source": str, "message": str,
               "radiobiology": {"alpha_beta_gy", "bed_gy", "eqd2_gy"} | null,
               "crosscheck": {"engine", "value", "difference", "flagged", "used"} | null}],
     "volumes": {"PTV": {"volume_cc": float, "recipe": str}, ...},
     "messages": [str],
     "inputs": {"ct", "rtstruct", "rtdose", "rtplan": {"kind", "sop_class", "sop_class_uid", "sop_instance_uid",
                "series_uid", "label", "date", "time", "manufacturer", "model", "software_versions", "sha256",
                ...} | null, "mr": [...], "level_source": str},   # a DICOM review; {} otherwise
     "input_files": {path: sha256},
     "signoff": {"reviewer", "decision": "approve"|"approve-with-comments"|"reject", "comments", "date"} | null,
     "software": {"name": "SIBSpineSBRT", "version": str}}

Changes from sibspine-metrics/1: "verdict" now counts confirmed rows only (unconfirmed local defaults are
advisory, summed up in "advisory_verdict"); status "met" (a mandatory-only limit that is met, formerly
"optimal"); rows gain "confirmed", "source", "judged_value" and "precision" (the status is decided on
"judged_value", "value" rounded to "precision"); top level gains "deviations", "problems",
"advisory_verdict", "not_contoured", "not_evaluated", "protocol_sha256", "signoff" and "input_files" (the sha256 of
every input file, as the paths were given).

"acceptable" means the mandatory limit is met but the optimal one is not; "not_applicable" (with its
reason in "message") means the protocol does not apply the limit to this case, e.g. the cord PRV below L2
where there is no cord; it does not make the verdict "incomplete". Values are rounded to 1e-4 of their
unit. Nothing time- or machine-dependent is written, so the same case gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .. import __version__
from ..dose.radiobiology import metric_radiobiology
from ..review.pipeline import ReviewResult

FORMAT = "sibspine-metrics/2"


def _round(v):
    return None if v is None else round(float(v), 4)


def _radiobiology(result: ReviewResult, row):
    role = result.protocol.structures.get(row.structure)
    rb = metric_radiobiology(row.metric, row.value, result.protocol.fractions, role.alpha_beta_gy if role else None)
    return None if rb is None else {k: _round(v) for k, v in rb.items()}


def _crosscheck(row):
    c = row.crosscheck
    if c is None:
        return None
    return {
        "engine": c.engine,
        "value": _round(c.value),
        "difference": _round(c.difference),
        "flagged": c.flagged,
        "used": c.used,
    }


def metrics_dict(result: ReviewResult, input_files: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The document; ``input_files`` (path -> sha256) says which input files it belongs to."""
    return {
        "format": FORMAT,
        "case": result.case,
        "level": result.level,
        "protocol": result.protocol.id,
        "protocol_sha256": result.protocol.checksum,
        "prescription": {
            "dose_gy": result.protocol.prescription_gy,
            "fractions": result.protocol.fractions,
            "structure": result.protocol.prescription_structure,
            "metric": result.protocol.prescription_metric,
        },
        "verdict": result.verdict,
        "advisory_verdict": result.advisory_verdict,
        "deviations": list(result.deviations),
        "problems": list(result.problems),
        "not_contoured": list(result.not_contoured),
        "not_evaluated": list(result.not_evaluated),
        "rows": [
            {
                "structure": r.structure,
                "metric": r.metric,
                "value": _round(r.value),
                "judged_value": _round(r.judged_value),
                "precision": r.constraint.precision,
                "unit": r.unit,
                "optimal": r.optimal_text,
                "mandatory": r.mandatory_text,
                "status": r.status,
                "confirmed": r.constraint.confirmed,
                "source": r.constraint.source,
                "message": r.message,
                "radiobiology": _radiobiology(result, r),
                "crosscheck": _crosscheck(r),
            }
            for r in result.rows
        ],
        "volumes": {
            name: {"volume_cc": _round(v.volume_cc), "recipe": v.recipe} for name, v in sorted(result.volumes.items())
        },
        "messages": list(result.messages),
        "inputs": dict(result.identity),
        "input_files": dict(input_files or {}),
        "signoff": None if result.signoff is None else result.signoff.as_dict(),
        "software": {"name": "SIBSpineSBRT", "version": __version__},
    }


def write_metrics_json(result: ReviewResult, path, input_files: Optional[Mapping[str, str]] = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics_dict(result, input_files), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path
