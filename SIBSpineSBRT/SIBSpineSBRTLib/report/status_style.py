"""How statuses and verdicts look and read, in one place for every front end (terminal, report, Slicer
panel and tables, web demo)."""

from __future__ import annotations

from ..protocol import evaluate as ev

STATUS_LABEL = {
    ev.OPTIMAL: "OPTIMAL",
    ev.ACCEPTABLE: "ACCEPTABLE",
    ev.MET: "MET",
    ev.FAIL: "FAIL",
    ev.NOT_EVALUABLE: "NOT EVALUABLE",
    ev.NOT_APPLICABLE: "N/A",
}
STATUS_HEX = {
    ev.OPTIMAL: "#2e9e40",
    ev.ACCEPTABLE: "#e0a800",
    ev.MET: "#2e7d9e",
    ev.FAIL: "#d32f2f",
    ev.NOT_EVALUABLE: "#8c8c8c",
    ev.NOT_APPLICABLE: "#b0bec5",
}
STATUS_RGB = {s: tuple(int(h[i : i + 2], 16) / 255.0 for i in (1, 3, 5)) for s, h in STATUS_HEX.items()}
STATUS_ANSI = {
    ev.OPTIMAL: "32",
    ev.ACCEPTABLE: "33",
    ev.MET: "36",
    ev.FAIL: "31",
    ev.NOT_EVALUABLE: "90",
    ev.NOT_APPLICABLE: "90",
}
STATUS_MEANING = {
    ev.OPTIMAL: "the optimal limit is met",
    ev.ACCEPTABLE: "the mandatory limit is met, the optimal one is not",
    ev.MET: "the limit is met (the protocol gives only a mandatory limit for this metric)",
    ev.FAIL: "the mandatory limit is not met",
    ev.NOT_EVALUABLE: "the metric could not be computed; a missing structure or dose is never a pass",
    ev.NOT_APPLICABLE: "the protocol does not apply this limit here (e.g. no spinal cord below the conus)",
}
VERDICT_HEX = {ev.PASS: "#2e9e40", ev.FAIL: "#d32f2f", ev.INCOMPLETE: "#8c8c8c"}
