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


def test_packages_slicer_lacks_are_named_with_the_pins_tested_on_python39():
    from pathlib import Path

    assert r.missing_packages(r.REPORT) == [] and r.missing_packages(r.RTSTRUCT) == []  # this venv has them
    absent = {"fpdf", "contourpy"}
    fake = lambda name: None if name in absent else object()  # noqa: E731
    assert r.missing_packages(r.REPORT, fake) == ["fpdf2==2.8.4"]
    assert r.missing_packages(r.RTSTRUCT, fake) == ["contourpy==1.3.0"]
    assert r.missing_packages(r.EVALUATE, fake) == []
    lock = (Path(__file__).parents[1] / "requirements" / "py39.lock").read_text().split()
    for needs in r.PACKAGES.values():
        for _, requirement in needs:
            assert requirement in lock, requirement  # what Slicer installs is what the 3.9 pass tests
