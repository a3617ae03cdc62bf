"""The physicist's sign-off: options checked before any work, stored in metrics.json, printed in the report."""

import json

import pytest

from SIBSpineSBRTLib.report.signoff import SignOff, SignOffError


def test_signoff_rules():
    assert SignOff.make(None, None) is None
    s = SignOff.make(" A. Physicist ", "Approve", date="2026-12-04")
    assert (s.reviewer, s.decision, s.decision_text, s.date) == ("A. Physicist", "approve", "Approve", "2026-12-04")
    for reviewer, decision, comments, match in [
        (None, "approve", "", "needs both"),
        ("A", None, "", "needs both"),
        (None, None, "why", "belong to a sign-off"),
        ("A", "maybe", "", "use one of"),
        ("A", "reject", "", "needs --comments"),
        ("A", "approve-with-comments", " ", "needs --comments"),
    ]:
        with pytest.raises(SignOffError, match=match):
            SignOff.make(reviewer, decision, comments)


@pytest.mark.mrml
def test_signed_review_through_the_cli(tmp_path, capsys):
    from pypdf import PdfReader

    from SIBSpineSBRTLib.frontends.cli import main

    out = tmp_path / "out"
    argv = ["demo", "--out", str(out), "--reviewer", "A. Physicist", "--decision", "reject", "--comments", "GTV D2%"]
    assert main(argv) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["signoff"]["reviewer"] == "A. Physicist" and doc["signoff"]["decision"] == "reject"
    text = "".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)
    assert "Sign-off" in text and "A. Physicist" in text and "Reject" in text
    assert main(["demo", "--out", str(tmp_path / "x"), "--decision", "reject"]) == 2
    assert "needs both" in capsys.readouterr().err and not (tmp_path / "x").exists()
