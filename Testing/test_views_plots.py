"""The review layout, per-view layers, dose colour-wash and the DVH plot chart, on real MRML nodes."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytestmark = pytest.mark.mrml


@pytest.fixture
def reviewed(scene):
    from SIBSpineSBRTLib.review.demo import run_demo_review

    result, nodes = run_demo_review(scene.scene)
    return scene.scene, result, nodes


def test_layout_has_the_five_views_and_registers_once():
    import slicer

    from SIBSpineSBRTLib.mrml import views

    root = ET.fromstring(views.REVIEW_LAYOUT_XML)
    found = {(v.get("class"), v.get("singletontag")) for v in root.iter("view")}
    assert found == {
        ("vtkMRMLSliceNode", "Red"),
        ("vtkMRMLSliceNode", "SBRTFusion"),
        ("vtkMRMLSliceNode", "Yellow"),
        ("vtkMRMLTableViewNode", "TableView1"),
        ("vtkMRMLPlotViewNode", "PlotView1"),
    }
    orientation = {v.get("singletontag"): v.find("property[@name='orientation']") for v in root.iter("view")}
    assert orientation["Red"].text == "Axial" and orientation["SBRTFusion"].text == "Axial"
    assert orientation["Yellow"].text == "Sagittal"
    layout = slicer.vtkMRMLLayoutNode()
    assert views.register_review_layout(layout) == views.REVIEW_LAYOUT_ID > 100
    assert views.register_review_layout(layout) == views.REVIEW_LAYOUT_ID  # a reload refreshes, no duplicate
    assert layout.GetLayoutDescription(views.REVIEW_LAYOUT_ID) == views.REVIEW_LAYOUT_XML


def test_layers_per_view_keep_dose_and_mr_apart(reviewed):
    import slicer

    from SIBSpineSBRTLib.mrml import views
    from SIBSpineSBRTLib.mrml.volumes import add_volume, volume_geometry

    scene, result, nodes = reviewed
    composites = {}
    for name in ("Red", "SBRTFusion", "Yellow"):
        c = slicer.vtkMRMLSliceCompositeNode()
        c.SetLayoutName(name)
        scene.AddNode(c)
        composites[name] = c
    g = volume_geometry(nodes.dose)
    mr = add_volume(scene, np.ones(g.shape, np.float32), g, "MR")
    done = views.show_review(scene, nodes.ct, nodes.dose, mr, nodes.segmentation, 30.0, 0.6)
    assert set(done) == {"Red", "SBRTFusion", "Yellow"}
    for name in ("Red", "Yellow"):
        c = composites[name]
        assert c.GetBackgroundVolumeID() == nodes.ct.GetID() and c.GetForegroundVolumeID() == nodes.dose.GetID()
    fusion = composites["SBRTFusion"]
    assert fusion.GetForegroundVolumeID() == mr.GetID() and fusion.GetForegroundOpacity() == pytest.approx(0.6)
    assert views.set_mr_opacity(scene, 1.7) == "SBRTFusion" and fusion.GetForegroundOpacity() == 1.0
    display = nodes.dose.GetDisplayNode()
    lut = display.GetColorNode().GetLookupTable()  # blue at low dose, red at high, as dose washes go
    low, mid, high = (lut.GetTableValue(i)[:3] for i in (0, 128, lut.GetNumberOfTableValues() - 1))
    assert low[2] > 0.5 > low[0] and high[0] > 0.8 > high[2] and mid[1] > mid[0] and mid[1] > mid[2]
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(3.0)
    assert display.GetWindowLevelMax() == pytest.approx(33.0) and display.GetWindowLevelMin() == pytest.approx(0.0)
    assert not nodes.segmentation.GetDisplayNode().GetVisibility2DFill()


def test_no_views_no_error(reviewed):
    from SIBSpineSBRTLib.mrml import views

    scene, _, nodes = reviewed
    assert views.show_review(scene, nodes.ct, nodes.dose) == []  # headless: nothing to set, nothing fails
    assert views.set_mr_opacity(scene, 0.5) is None


def test_dvh_chart_matches_the_engine(reviewed):
    from vtkmodules.util import numpy_support as nps

    from SIBSpineSBRTLib.mrml.plots import write_dvh_chart

    scene, result, _ = reviewed
    chart = write_dvh_chart(scene, result)
    again = write_dvh_chart(scene, result)  # rebuilt in place, not duplicated
    assert again.GetID() == chart.GetID()
    names = [chart.GetNthPlotSeriesNode(i).GetName() for i in range(chart.GetNumberOfPlotSeriesNodes())]
    assert "DVH GTV" in names and "DVH SpinalCord_PRV02" in names and "Mandatory limits" in names
    assert "DVH CTV" not in names  # only the structures the protocol evaluates
    series = chart.GetNthPlotSeriesNode(names.index("DVH GTV"))
    table = series.GetTableNode().GetTable()
    dose = nps.vtk_to_numpy(table.GetColumnByName("Dose (Gy)"))
    vol = nps.vtk_to_numpy(table.GetColumnByName("Volume (%)"))
    gtv = result.dvhs["GTV"]
    d50 = result.dvhs["GTV"].metric("D50%")
    assert np.interp(d50, dose, vol) == pytest.approx(50.0, abs=1.0)
    assert vol[0] == pytest.approx(100.0) and gtv.max <= dose[-1] + 0.1
    limits = chart.GetNthPlotSeriesNode(names.index("Mandatory limits")).GetTableNode().GetTable()
    pts = set(
        zip(
            nps.vtk_to_numpy(limits.GetColumnByName("Dose (Gy)")),
            nps.vtk_to_numpy(limits.GetColumnByName("Volume (%)")),
        )
    )
    assert (36.0, 50.0) in pts and (29.7, 90.0) in pts and (30.3, 90.0) in pts


def test_results_table_keeps_everything_the_panel_shows(reviewed):
    from dataclasses import replace

    from SIBSpineSBRTLib.mrml.results import read_results_table, results_verdict, write_results_table
    from SIBSpineSBRTLib.protocol.crosscheck import apply_crosscheck

    scene, result, _ = reviewed
    other = {(r.structure, r.metric): r.value + 0.5 for r in result.rows if r.value is not None}
    checked = replace(result, rows=apply_crosscheck(result.rows, other), messages=["first", "second"])
    node = write_results_table(scene, checked)
    assert write_results_table(scene, checked).GetID() == node.GetID()  # one table, refilled
    rows = read_results_table(node)
    gtv = [r for r in rows if (r["structure"], r["metric"]) == ("GTV", "D50%")][0]
    row = [r for r in result.rows if (r.structure, r.metric) == ("GTV", "D50%")][0]
    value = row.value
    assert gtv["value_text"] == row.value_text and gtv["crosscheck_text"] == f"{value + 0.5:.2f} (+0.50)"
    assert gtv["eqd2_text"].endswith("Gy") and float(gtv["eqd2_text"].split()[0]) > value
    assert "Mitsuyoshi" in gtv["source"]
    stored = results_verdict(node)
    assert (stored.verdict, stored.messages) == (checked.verdict, ["first", "second"])
