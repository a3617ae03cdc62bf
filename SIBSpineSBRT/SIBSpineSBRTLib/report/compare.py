"""Two metrics.json documents of the same case compared row by row: what the Slicer self-test and regression
runs check when the same DICOM folder is reviewed through Slicer's DICOM database and SlicerRT, and through
the pydicom path (the two rasterise the RTSTRUCT contours differently, hence a tolerance)."""

from __future__ import annotations

from typing import Any, Dict, List


def metrics_differences(a: Dict[str, Any], b: Dict[str, Any], abs_gy: float = 0.3, rel: float = 0.03) -> List[str]:
    """Sentences for every difference that matters: verdict, rows present, each row's status, and values
    further apart than max(``abs_gy``, ``rel`` x value). Empty when the two reviews agree."""
    out = []
    if a.get("verdict") != b.get("verdict"):
        out.append(f"verdict {a.get('verdict')} != {b.get('verdict')}")
    rows_a = {(r["structure"], r["metric"]): r for r in a.get("rows", [])}
    rows_b = {(r["structure"], r["metric"]): r for r in b.get("rows", [])}
    for key in sorted(set(rows_a) ^ set(rows_b)):
        out.append(f"{key[0]} {key[1]} only in {'the first' if key in rows_a else 'the second'} review")
    for key in [k for k in rows_a if k in rows_b]:
        ra, rb = rows_a[key], rows_b[key]
        name = f"{key[0]} {key[1]}"
        if ra["status"] != rb["status"]:
            out.append(f"{name}: status {ra['status']} != {rb['status']}")
        va, vb = ra.get("value"), rb.get("value")
        if (va is None) != (vb is None):
            out.append(f"{name}: value {va} != {vb}")
        elif va is not None and abs(va - vb) > max(abs_gy, rel * max(abs(va), abs(vb))):
            out.append(f"{name}: {va} vs {vb} {ra.get('unit', '')} (tolerance max({abs_gy:g}, {100 * rel:g}%))")
    return out
