"""Teaching aids: boost and whole-dose what-ifs, the quiz, row explanations, and the review in steps
(open, build, evaluate) giving exactly the demo review."""

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseError, DoseGrid
from SIBSpineSBRTLib.dose.radiobiology import eqd2
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.review import teaching as t
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case


@pytest.fixture(scope="module")
def demo_review(protocol, demo_case):
    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    dose = DoseGrid(c.dose_gy, c.dose_geometry)
    return review_case(CaseInput(c.name, c.level, masks, dose), protocol)


def row(result, structure, metric):
    return next(r for r in result.rows if (r.structure, r.metric) == (structure, metric))


# -- what-ifs ----------------------------------------------------------------------------------------------


def test_boost_scaling_keeps_dose_at_or_below_rx_and_scales_the_excess(demo_case):
    dose = DoseGrid(demo_case.dose_gy, demo_case.dose_geometry)
    before = dose.array.copy()
    rx = 30.0
    low = dose.array <= rx
    assert low.any() and (~low).any()
    for s in (0.5, 1.3):
        boosted = t.boost_scaled_dose(dose, rx, s)
        assert np.array_equal(boosted.array[low], dose.array[low])  # bit for bit
        np.testing.assert_allclose(boosted.array[~low] - rx, s * (dose.array[~low] - rx), rtol=1e-12, atol=1e-12)
        assert boosted.geometry is dose.geometry
    assert np.array_equal(t.boost_scaled_dose(dose, rx, 1.0).array, dose.array)
    assert np.array_equal(dose.array, before)  # the plan's dose is never modified
    with pytest.raises(DoseError):
        t.boost_scaled_dose(dose, rx, -0.1)


def test_boost_what_if_equals_a_fresh_review_of_the_boosted_dose(protocol, demo_case, demo_review):
    c = demo_case
    s = 1.3
    what = t.scaled_review(demo_review, t.BOOST, s)
    # the boosted dose built independently of the library
    d = c.dose_gy.astype(float)
    by_hand = DoseGrid(np.where(d > 30.0, 30.0 + s * (d - 30.0), d), c.dose_geometry)
    fresh = review_case(CaseInput(c.name, c.level, demo_review.inputs.masks, by_hand), protocol)
    assert [(r.structure, r.metric, r.status) for r in what.result.rows] == [
        (r.structure, r.metric, r.status) for r in fresh.rows
    ]
    for a, b in zip(what.result.rows, fresh.rows):
        assert a.value == pytest.approx(b.value, abs=1e-9)
    assert what.result.verdict == fresh.verdict
    # what it teaches: the GTV boost moves with the factor (all its dose is above Rx, so exactly); the
    # oesophagus, far from any dose above Rx, does not move at all; the cord PRV and thecal sac hardly move
    # (only where a dose-grid cell touching them has a corner above Rx, next to the target)
    gtv = row(demo_review, "GTV", "D50%").value
    assert row(what.result, "GTV", "D50%").value == pytest.approx(30.0 + s * (gtv - 30.0), rel=1e-6)
    for r in demo_review.rows:
        if r.structure == "Esophagus":
            assert row(what.result, r.structure, r.metric).value == pytest.approx(r.value, abs=1e-9)
        elif r.structure in ("SpinalCord_PRV02", "ThecalSac"):
            assert row(what.result, r.structure, r.metric).value == pytest.approx(r.value, abs=0.1)
    # the original result is untouched
    assert demo_review.inputs.dose.array is not what.dose.array
    assert row(demo_review, "GTV", "D50%").value == gtv


def test_whole_dose_what_if_statuses_equal_a_fresh_review(protocol, demo_case, demo_review):
    c = demo_case
    for f in (0.92, 1.1):
        what = t.scaled_review(demo_review, t.WHOLE, f)
        fresh = review_case(
            CaseInput(c.name, c.level, demo_review.inputs.masks, demo_review.inputs.dose.scaled(f)), protocol
        )
        assert [r.status for r in what.result.rows] == [r.status for r in fresh.rows]
        for a, b in zip(what.result.rows, fresh.rows):
            assert a.value == pytest.approx(b.value, abs=1e-6)
        assert what.result.verdict == fresh.verdict
        assert np.allclose(what.dose.array, demo_review.inputs.dose.array * f)
    # raising the whole dose by 10 % breaks the PTV_Eval D90% window (29.7-30.3 Gy): a real change of verdict
    assert demo_review.verdict == ev.PASS
    assert t.scaled_review(demo_review, t.WHOLE, 1.1).result.verdict == ev.FAIL
    assert t.scaled_review(demo_review, t.WHOLE, 1.0).result is demo_review
    with pytest.raises(ValueError, match="What-if mode"):
        t.scaled_review(demo_review, "half", 1.1)


def test_what_if_modes_are_usable_slider_ranges():
    for mode in t.WHATIF_MODES.values():
        assert 0 < mode.minimum < 1.0 < mode.maximum and mode.step > 0
        steps = (mode.maximum - mode.minimum) / mode.step
        assert abs(steps - round(steps)) < 1e-9  # 1.0 is reachable on the slider
        assert abs((1.0 - mode.minimum) / mode.step - round((1.0 - mode.minimum) / mode.step)) < 1e-9


# -- explanations ---------------------------------------------------------------------------------------------


def test_every_row_explains_its_metric_limits_and_source(protocol, demo_review):
    for r in demo_review.rows:
        lines = t.explain_row(r, protocol, demo_review)
        text = " ".join(lines)
        assert lines[0].startswith(f"{r.metric} is ")
        assert r.structure in lines[0]
        c = r.constraint
        if c.mandatory is not None:
            assert f"mandatory {c.mandatory.describe(c.unit)}" in text
        if c.optimal is not None:
            assert f"optimal {c.optimal.describe(c.unit)}" in text
        assert (c.source or protocol.id) in text
        if c.note:
            assert c.note.rstrip(".") in text
        assert ("literature default" in text) == (not c.confirmed)
        assert ("never decides the verdict" in text) == r.advisory
        assert ("MET (the protocol gives no optimal level)" in text) == (c.optimal is None)
        assert f"judged as shown, rounded to {c.precision:g} {c.unit}" in text
        assert f"{t.STATUS_LABEL[r.status]}: {t.STATUS_MEANING[r.status]}" in text
        if r.structure in demo_review.volumes:
            assert demo_review.volumes[r.structure].recipe in text
    d90 = " ".join(t.explain_row(row(demo_review, "PTV_Eval", "D90%"), protocol, demo_review))
    assert "This is the prescription: 30 Gy in 5 fractions" in d90
    prv = row(demo_review, "SpinalCord_PRV02", "D0.03cc")
    text = " ".join(t.explain_row(prv, protocol, demo_review))
    assert f"EQD2 of {eqd2(prv.value, 5, 2.0):.1f} Gy" in text and "alpha/beta 2 Gy" in text
    assert "minimum dose of the hottest 0.03 cc of SpinalCord_PRV02" in text
    assert "SpinalCord_PRV02 is built by this software: SpinalCord_PRV02 = SpinalCord + 2 mm" in text


def test_metric_descriptions():
    assert "median" in t.describe_metric("D50%", "GTV")
    assert "near-minimum" in t.describe_metric("D98%", "PTV_Eval")
    assert "coverage of PTV_Eval" in t.describe_metric("D90%", "PTV_Eval")
    v20 = t.describe_metric("V20Gy%", "Lung")
    assert v20 == "V20Gy% is the volume of Lung (percent of Lung) receiving at least 20 Gy."
    assert t.describe_metric("Dmax", "Cord") == "Dmax is the highest dose anywhere in Cord."


# -- the quiz ----------------------------------------------------------------------------------------------------


def test_quiz_hides_the_verdict_and_every_status_until_answered(protocol, demo_review):
    quiz = t.Quiz(enabled=True)
    assert quiz.hides_verdict
    rows = t.panel_rows(demo_review, quiz)
    assert {r["status"] for r in rows} == {t.HIDDEN} and {r["label"] for r in rows} == {"?"}
    for r, shown in zip(demo_review.protocol_rows + demo_review.advisory_rows, rows):
        assert shown["value"] == r.value_text  # the resident judges from values (as judged) and limits
        assert t.STATUS_LABEL[r.status] + ":" not in " ".join(shown["help"])
    banner = t.verdict_banner(demo_review, quiz)
    assert banner["verdict"] == t.HIDDEN and "PASS" not in banner["text"]
    assert quiz.feedback(demo_review) == ""
    with pytest.raises(ValueError, match="judgement"):
        quiz.record("maybe")
    quiz.record("FAIL")
    assert not quiz.hides_verdict and quiz.is_correct(demo_review) is False
    assert quiz.feedback(demo_review).startswith("Not quite: you judged FAIL. The plan PASSES")
    assert [r["status"] for r in t.panel_rows(demo_review, quiz)] == [
        r.status for r in demo_review.protocol_rows + demo_review.advisory_rows
    ]
    assert t.verdict_banner(demo_review, quiz)["text"].startswith("Verdict: PASS")
    quiz.record("pass")
    assert quiz.feedback(demo_review).startswith("Correct. The plan PASSES")
    quiz.reset()
    assert quiz.hides_verdict
    assert not t.Quiz(enabled=False).hides_verdict


def test_quiz_feedback_names_the_failing_row(protocol, demo_review):
    failing = t.scaled_review(demo_review, t.WHOLE, 1.1).result
    quiz = t.Quiz(enabled=True)
    quiz.record("fail")
    text = quiz.feedback(failing)
    assert text.startswith("Correct. The plan FAILS: ")
    assert "PTV_Eval D90% = 33.0 Gy (mandatory >= 29.7 and <= 30.3 Gy)" in text


def test_panel_rows_carry_the_library_status_colours(demo_review):
    rows = t.panel_rows(demo_review)
    ordered = demo_review.protocol_rows + demo_review.advisory_rows  # the advisory rows apart, after
    assert [(r["structure"], r["metric"], r["status"], r["advisory"]) for r in rows] == [
        (r.structure, r.metric, r.status, r.advisory) for r in ordered
    ]
    assert all(r["color"] == t.STATUS_HEX[r["status"]] for r in rows)
    assert [r["value"] for r in rows] == [r.value_text for r in ordered]
    assert all(r["source"] == o.constraint.source for r, o in zip(rows, ordered))
    prv = next(r for r in rows if r["key"] == "SpinalCord_PRV02 D0.03cc")
    assert prv["status"] == ev.MET and prv["label"] == "MET"
    banner = t.verdict_banner(demo_review)
    assert banner["color"] == t.VERDICT_HEX["pass"]
    assert banner["text"] == f"Verdict: PASS  ({t.status_counts(demo_review)})"
    assert "met" in t.status_counts(demo_review)
    assert not banner["non_protocol"] and banner["deviations"] == [] and banner["problems"] == []
    assert banner["advisory"] and "never decide the verdict" in banner["advisory_note"]
    assert banner["not_contoured_text"] == f"Not contoured (expected at T8): {', '.join(demo_review.not_contoured)}"
    assert banner["advisory_verdict_text"].startswith(f"Advisory verdict: {demo_review.advisory_verdict.upper()}")


def test_banner_says_non_protocol_and_the_problems(protocol, demo_case, demo_review):
    c = demo_case
    case = CaseInput(c.name, c.level, demo_review.inputs.masks, demo_review.inputs.dose, plan_fractions=3)
    off = review_case(case, protocol, prv_margin_mm=0.0)
    banner = t.verdict_banner(off)
    assert banner["non_protocol"] and banner["non_protocol_title"].startswith("NON-PROTOCOL REVIEW")
    assert banner["deviations"] == off.deviations and "0 mm" in banner["deviations"][0]
    assert banner["problems"] == off.problems and "3 fractions" in banner["problems"][0]
    # in the quiz the verdict and the problems (they give the answer away) wait; the deviations do not
    hidden = t.verdict_banner(off, t.Quiz(enabled=True))
    assert hidden["verdict"] == t.HIDDEN and hidden["problems"] == [] and hidden["non_protocol"]
    assert "cannot pass" in t.verdict_reason(off) or off.verdict == ev.FAIL


def test_teaching_case_cache(tmp_path, thoracic_case):
    first = t.prepare_teaching_case("thoracic", "pass", tmp_path)
    files = list(tmp_path.glob("teaching-thoracic-pass-*.pickle"))
    assert len(files) == 1
    again = t.prepare_teaching_case("thoracic", "pass", tmp_path)
    for prepared in (first, again):
        case = prepared.case
        assert np.array_equal(case.ct, thoracic_case.ct) and np.array_equal(case.dose_gy, thoracic_case.dose_gy)
        assert case.segments.keys() == thoracic_case.segments.keys()
        assert all(np.array_equal(case.segments[n], thoracic_case.segments[n]) for n in case.segments)
        assert case.ct_geometry == thoracic_case.ct_geometry
        # the registration recovers the phantom's known MR->CT transform (sub-millimetre at the target)
        gtv = np.append(thoracic_case.landmarks["gtv_centroid"], 1.0)
        mr_point = np.linalg.inv(thoracic_case.mr_to_ct) @ gtv
        assert np.linalg.norm((prepared.mr_to_ct @ mr_point)[:3] - gtv[:3]) < 1.0
    files[0].write_bytes(b"not a pickle")  # a damaged cache entry is rebuilt, never trusted
    rebuilt = t.prepare_teaching_case("thoracic", "pass", tmp_path)
    assert np.array_equal(rebuilt.case.dose_gy, thoracic_case.dose_gy)
    assert files[0].read_bytes()[:1] == b"\x80"


def test_dvh_png(demo_review):
    png = t.dvh_png(demo_review)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000


# -- the review in steps (real MRML) ----------------------------------------------------------------------------


@pytest.mark.mrml
def test_steps_give_exactly_the_demo_review(scene, protocol):
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.segmentations import DERIVED_TAG, segment_names, segment_tag
    from SIBSpineSBRTLib.review.demo import run_demo_review

    session = t.open_teaching_case(scene.scene, "thoracic", "pass", protocol)
    seg = session.nodes.segmentation
    before = [n for _, n in segment_names(seg)]
    assert not {"PTV", "PTV_Eval", "SpinalCord_PRV02"} & set(before)
    assert session.missing()["what_if"] == ["Evaluate the plan first."]
    assert session.missing()["build_volumes"] == [] and session.missing()["evaluate"] == []
    assert session.fusion_note == (t.NO_MR_NOTE if session.nodes.mr is None else "")

    planned = t.build_volumes(session)
    assert set(planned.volumes) == {"PTV", "PTV_Eval", "SpinalCord_PRV02"} and not planned.problems
    after = dict((n, sid) for sid, n in segment_names(seg))
    assert set(after) == set(before) | set(planned.volumes)
    for name in planned.volumes:
        assert segment_tag(seg, after[name], DERIVED_TAG) == "1"

    session.quiz.enabled = True
    session.quiz.record("pass")
    result = t.evaluate(session)
    assert session.quiz.answer is None  # a new evaluation is a new question
    assert session.missing()["what_if"] == []

    other = new_scene()
    try:
        reference, _ = run_demo_review(other.scene, protocol)
    finally:
        other.scene.Clear(1)
    assert [(r.structure, r.metric, r.status) for r in result.rows] == [
        (r.structure, r.metric, r.status) for r in reference.rows
    ]
    for a, b in zip(result.rows, reference.rows):
        assert a.value == pytest.approx(b.value, abs=1e-12)
    assert result.verdict == reference.verdict == "pass"
    focus = session.focus_ras()
    gtv = session.data.masks["GTV"].centroid_ras()
    assert focus == pytest.approx(tuple(gtv))

    # the PDF report: not while the quiz hides the statuses; then the evaluated plan, MR fused
    import io

    from pypdf import PdfReader

    session.quiz.enabled = True
    assert session.missing()["report"] == ["Judge the plan in the quiz first: the report shows every status."]
    with pytest.raises(ValueError, match="quiz"):
        t.report_pdf(session)
    session.quiz.record("pass")
    assert session.missing()["report"] == []
    reader = PdfReader(io.BytesIO(t.report_pdf(session)))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert "Verdict: PASS" in text and session.data.name in text
    assert "Axial MR over the CT" in text  # the fusion image, through the registration
    assert len([im for page in reader.pages for im in page.images]) == 7  # DVH, trial ranges, 5 slices
