"""The review layout and what each view shows, set through MRML nodes only (no Qt).

Layout (one click in the module): CT axial with dose colour-wash and outlines | MR over CT axial |
CT sagittal with dose; below them the results table and the DVH plot. A Slicer 5.6/5.8 slice view blends
at most two volume layers, so dose and MR never share a view. Views are found by their layout name, so
the same functions work in desktop Slicer and on a standalone scene in the tests.
"""

from __future__ import annotations

from typing import Optional

REVIEW_LAYOUT_ID = 73010  # a large id, clear of Slicer's own (< 100) and of other extensions' small ones
CT_VIEW, FUSION_VIEW, SAGITTAL_VIEW = "Red", "SBRTFusion", "Yellow"
TABLE_VIEW, PLOT_VIEW = "TableView1", "PlotView1"

REVIEW_LAYOUT_XML = f"""<layout type="vertical" split="true">
 <item splitSize="620">
  <layout type="horizontal" split="true">
   <item><view class="vtkMRMLSliceNode" singletontag="{CT_VIEW}">
    <property name="orientation" action="default">Axial</property>
    <property name="viewlabel" action="default">CT</property>
    <property name="viewcolor" action="default">#F34A33</property></view></item>
   <item><view class="vtkMRMLSliceNode" singletontag="{FUSION_VIEW}">
    <property name="orientation" action="default">Axial</property>
    <property name="viewlabel" action="default">MR</property>
    <property name="viewcolor" action="default">#8E44AD</property></view></item>
   <item><view class="vtkMRMLSliceNode" singletontag="{SAGITTAL_VIEW}">
    <property name="orientation" action="default">Sagittal</property>
    <property name="viewlabel" action="default">S</property>
    <property name="viewcolor" action="default">#EDD54C</property></view></item>
  </layout>
 </item>
 <item splitSize="380">
  <layout type="horizontal" split="true">
   <item><view class="vtkMRMLTableViewNode" singletontag="{TABLE_VIEW}">
    <property name="viewlabel" action="default">T</property></view></item>
   <item><view class="vtkMRMLPlotViewNode" singletontag="{PLOT_VIEW}">
    <property name="viewlabel" action="default">P</property></view></item>
  </layout>
 </item>
</layout>"""


def register_review_layout(layout_node) -> int:
    """Add (or refresh, e.g. after a module reload) the review layout on Slicer's layout node."""
    if layout_node.IsLayoutDescription(REVIEW_LAYOUT_ID):
        layout_node.SetLayoutDescription(REVIEW_LAYOUT_ID, REVIEW_LAYOUT_XML)
    else:
        layout_node.AddLayoutDescription(REVIEW_LAYOUT_ID, REVIEW_LAYOUT_XML)
    return REVIEW_LAYOUT_ID


def slice_composite(scene, view_name: str):
    """The composite node (layers) of the slice view with this layout name, or None."""
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        node = scene.GetNthNodeByClass(n, "vtkMRMLSliceCompositeNode")
        if node.GetLayoutName() == view_name:
            return node
    return None


DOSE_COLOR_TABLE_NAME = "SIBSpineSBRT dose"


def dose_color_table(scene):
    """A blue-cyan-green-yellow-red table for dose (SlicerRT's own is used when present). Slicer's built-in
    rainbows run red at the low end ("Rainbow") or pass through magenta ("ReverseRainbow")."""
    import numpy as np
    import slicer

    node = scene.GetFirstNodeByName(DOSE_COLOR_TABLE_NAME)
    if node is not None:
        return node
    node = slicer.vtkMRMLColorTableNode()
    node.SetName(DOSE_COLOR_TABLE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    stops = np.array(
        [[0, 0, 0.6], [0, 0.3, 1], [0, 0.9, 1], [0.1, 0.85, 0.1], [1, 0.95, 0], [1, 0.45, 0], [0.85, 0, 0]]
    )
    x = np.linspace(0, 1, len(stops))
    for i, t in enumerate(np.linspace(0, 1, 256)):
        r, g, b = (float(np.interp(t, x, stops[:, c])) for c in range(3))
        node.SetColor(i, f"{i}", r, g, b, 1.0)
    scene.AddNode(node)
    return node


def style_dose(scene, dose_node, prescription_gy: float) -> None:
    """Dose as a colour-wash: SlicerRT's dose colour table when present (else ``dose_color_table``), window
    0..1.1 x prescription, doses under 10% of the prescription transparent."""
    display = dose_node.GetDisplayNode()
    if display is None:
        dose_node.CreateDefaultDisplayNodes()
        display = dose_node.GetDisplayNode()
    color = scene.GetFirstNodeByName("Dose_ColorTable") or dose_color_table(scene)
    display.SetAndObserveColorNodeID(color.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.1 * prescription_gy)
    display.AutoThresholdOff()
    display.SetLowerThreshold(0.1 * prescription_gy)
    display.SetUpperThreshold(1e6)
    display.ApplyThresholdOn()


def show_review(
    scene, ct, dose=None, mr=None, segmentation=None, prescription_gy: float = 30.0, mr_opacity: float = 0.5
):
    """Put CT + dose in the CT and sagittal views, MR over CT in the fusion view, outlines everywhere.
    Views that do not exist (e.g. headless) are skipped. Returns the names of the views set."""
    if dose is not None:
        style_dose(scene, dose, prescription_gy)
    done = []
    for view, foreground, opacity in ((CT_VIEW, dose, 0.4), (SAGITTAL_VIEW, dose, 0.4), (FUSION_VIEW, mr, mr_opacity)):
        composite = slice_composite(scene, view)
        if composite is None:
            continue
        composite.SetLinkedControl(False)  # a user's change in one view must not overwrite the others
        composite.SetBackgroundVolumeID(ct.GetID())
        composite.SetForegroundVolumeID(foreground.GetID() if foreground is not None else None)
        composite.SetForegroundOpacity(opacity if foreground is not None else 0.0)
        done.append(view)
    if segmentation is not None:
        display = segmentation.GetDisplayNode()
        if display is None:
            segmentation.CreateDefaultDisplayNodes()
            display = segmentation.GetDisplayNode()
        display.SetVisibility2DFill(False)  # outlines: the dose and MR stay readable under them
        display.SetVisibility2DOutline(True)
    return done


def set_mr_opacity(scene, opacity: float) -> Optional[str]:
    composite = slice_composite(scene, FUSION_VIEW)
    if composite is None:
        return None
    composite.SetForegroundOpacity(min(max(float(opacity), 0.0), 1.0))
    return FUSION_VIEW
