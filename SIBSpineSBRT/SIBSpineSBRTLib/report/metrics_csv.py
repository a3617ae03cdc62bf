"""The constraint table as CSV (one row per constraint), for spreadsheets and batch comparisons."""

from __future__ import annotations

import csv
from pathlib import Path

from .metrics_json import metrics_dict

COLUMNS = (
    "structure",
    "metric",
    "value",
    "judged_value",
    "unit",
    "optimal",
    "mandatory",
    "status",
    "confirmed",
    "source",
    "eqd2_gy",
    "alpha_beta_gy",
    "message",
)


def write_metrics_csv(result, path) -> Path:
    doc = metrics_dict(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("case", "level", "protocol", "verdict", "advisory_verdict", "non_protocol", *COLUMNS))
        for row in doc["rows"]:
            rb = row["radiobiology"] or {}
            values = {**row, "eqd2_gy": rb.get("eqd2_gy"), "alpha_beta_gy": rb.get("alpha_beta_gy")}
            writer.writerow(
                (
                    doc["case"],
                    doc["level"],
                    doc["protocol"],
                    doc["verdict"],
                    doc["advisory_verdict"] or "",
                    "yes" if doc["deviations"] else "no",
                    *["" if values[c] is None else values[c] for c in COLUMNS],
                )
            )
    return path
