"""report/compare.py: the row-by-row comparison the Slicer self-test uses between its two loading paths."""

import copy

from SIBSpineSBRTLib.report.compare import metrics_differences

DOC = {
    "verdict": "pass",
    "rows": [
        {"structure": "GTV", "metric": "D50%", "value": 42.3, "unit": "Gy", "status": "optimal"},
        {"structure": "ThecalSac", "metric": "D0.03cc", "value": 21.3, "unit": "Gy", "status": "met"},
        {"structure": "SpinalCord_PRV02", "metric": "D0.03cc", "value": None, "unit": "Gy", "status": "not_applicable"},
    ],
}


def test_same_review_has_no_differences():
    assert metrics_differences(DOC, copy.deepcopy(DOC)) == []


def test_each_kind_of_difference_is_named():
    other = copy.deepcopy(DOC)
    other["verdict"] = "fail"
    other["rows"][0]["value"] = 42.3 + 1.5  # beyond max(0.3 Gy, 3%)
    other["rows"][1]["status"] = "fail"
    other["rows"][1]["value"] = 21.5  # within tolerance: only the status differs
    other["rows"].pop(2)
    diffs = metrics_differences(DOC, other)
    assert diffs[0] == "verdict pass != fail"
    assert "SpinalCord_PRV02 D0.03cc only in the first review" in diffs
    assert any(d.startswith("GTV D50%: 42.3 vs 43.8") for d in diffs)
    assert "ThecalSac D0.03cc: status met != fail" in diffs
    assert not any(d.startswith("ThecalSac D0.03cc: 21.3") for d in diffs)
