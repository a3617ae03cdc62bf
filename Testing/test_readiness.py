"""Which actions the panel offers, and the reasons given for the others."""

from SIBSpineSBRTLib.review import readiness as r


def test_nothing_chosen_everything_explained():
    m = r.missing_for(r.PanelState())
    assert all(m[a] for a in (r.REGISTER, r.BUILD, r.EVALUATE, r.NORMALISE, r.REPORT, r.RTSTRUCT))
    assert any("segmentation" in s for s in m[r.EVALUATE]) and any("dose" in s for s in m[r.EVALUATE])
    assert any("level" in s for s in m[r.BUILD])


def test_progressive_enabling():
    s = r.PanelState(ct=True, segmentation=True, level="t8")
    m = r.missing_for(s)
    assert m[r.BUILD] == [] and m[r.EVALUATE] == ["Choose the plan's dose volume."]
    assert m[r.REGISTER] == ["Choose the MR to register to the CT."]
    s.dose = True
    s.evaluated = True
    m = r.missing_for(s)
    assert m[r.EVALUATE] == [] and m[r.REPORT] == [] and m[r.NORMALISE] != []
    s.prescription_metric_known = True
    s.volumes_built = True
    m = r.missing_for(s)
    assert m[r.NORMALISE] == [] and m[r.RTSTRUCT] == [
        "The CT must come from DICOM so the RTSTRUCT can reference its series."
    ]


def test_bad_level_is_missing():
    assert r.evaluate_missing(True, True, "T13") == ["Choose the vertebral level of the target (C1-S5)."]
    assert r.evaluate_missing(True, True, "L2") == []
