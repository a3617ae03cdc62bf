import logging
import os
from typing import Annotated, Optional

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from SIBSpineSBRTLib.protocol.model import DEFAULT_PROTOCOL, LEVELS, available_protocols

#
# SIBSpineSBRT
#


class SIBSpineSBRT(ScriptedLoadableModule):
    """Module metadata. Everything the module decides lives in SIBSpineSBRTLib (tested outside Slicer)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SIB Spine SBRT")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Radiotherapy")]
        self.parent.dependencies = []
        self.parent.contributors = ["SIBSpineSBRT developers"]
        self.parent.helpText = _(
            "Spine SBRT with a simultaneous integrated boost: builds PTV (CTV + 2 mm axial, 5 mm SI), PTV_Eval and "
            "SpinalCord_PRV02 exactly, computes DVH metrics and judges them against the protocol's optimal and "
            "mandatory limits (30 Gy in 5 fractions to PTV_Eval D90%, GTV boost 40-45 Gy)."
        )
        self.parent.acknowledgementText = _(
            "Protocol: Mitsuyoshi et al., Phase 2 trial of SBRT with dose escalation using SIB for spinal metastases, "
            "Adv Radiat Oncol 2025."
        )


#
# SIBSpineSBRTParameterNode
#


@parameterNodeWrapper
class SIBSpineSBRTParameterNode:
    """The review's inputs, saved with the scene."""

    segmentation: Optional[vtkMRMLSegmentationNode]
    dose: Optional[vtkMRMLScalarVolumeNode]
    level: Annotated[str, Choice(list(LEVELS))] = "T8"
    protocol: Annotated[str, Choice(list(available_protocols()) or [DEFAULT_PROTOCOL])] = DEFAULT_PROTOCOL


#
# SIBSpineSBRTWidget
#


class SIBSpineSBRTWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the panel to the logic; holds no decision of its own."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SIBSpineSBRT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SIBSpineSBRTLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluateButton)
        self.ui.demoButton.connect("clicked(bool)", self.onDemoButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[SIBSpineSBRTParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        from SIBSpineSBRTLib.review.readiness import evaluate_missing

        p = self._parameterNode
        missing = evaluate_missing(
            p is not None and p.segmentation is not None, p is not None and p.dose is not None, p.level if p else None
        )
        self.ui.evaluateButton.enabled = not missing
        self.ui.evaluateButton.toolTip = (
            "\n".join(missing) if missing else _("Build the planning volumes and judge the plan.")
        )

    def onEvaluateButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Plan evaluation failed."), waitCursor=True):
            result = self.logic.evaluate(p.segmentation, p.dose, p.level, p.protocol)
            self.showResult(result)

    def onDemoButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Demo review failed."), waitCursor=True):
            result, nodes = self.logic.runDemo()
            self._parameterNode.segmentation = nodes.segmentation
            self._parameterNode.dose = nodes.dose
            self._parameterNode.level = result.level
            slicer.util.setSliceViewerLayers(
                background=nodes.ct, foreground=nodes.dose, foregroundOpacity=0.4, fit=True
            )
            self.showResult(result)

    def showResult(self, result) -> None:
        """Fill the results table and the verdict label (presentation only)."""
        import qt

        from SIBSpineSBRTLib.mrml.results import STATUS_COLORS
        from SIBSpineSBRTLib.report.text_table import STATUS_LABEL

        table = self.ui.resultsTable
        headers = [_("Structure"), _("Metric"), _("Value"), _("Optimal"), _("Mandatory"), _("Status")]
        table.clear()
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setRowCount(len(result.rows))
        for row, r in enumerate(result.rows):
            value = "-" if r.value is None else f"{r.value:.2f} {r.unit}"
            cells = [
                r.structure,
                r.metric,
                value,
                r.optimal_text or "-",
                r.mandatory_text or "-",
                STATUS_LABEL[r.status],
            ]
            for col, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(r.message or r.constraint.note or r.constraint.source)
                if col == len(cells) - 1:
                    red, green, blue = (int(255 * c) for c in STATUS_COLORS[r.status])
                    item.setBackground(qt.QBrush(qt.QColor(red, green, blue)))
                table.setItem(row, col, item)
        table.resizeColumnsToContents()
        self.ui.verdictLabel.text = _("Verdict: {verdict}").format(verdict=result.verdict.upper())
        self.ui.messagesLabel.text = "\n".join(result.messages)


#
# SIBSpineSBRTLogic
#


class SIBSpineSBRTLogic(ScriptedLoadableModuleLogic):
    """Runs the library's review on the application's scene; usable without a GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SIBSpineSBRTParameterNode(super().getParameterNode())

    def evaluate(self, segmentationNode, doseNode, level: str, protocolId: str, scene=None):
        """Build the planning volumes, judge the plan and store the results in the scene."""
        from SIBSpineSBRTLib.mrml.case import case_input_from_nodes, store_review
        from SIBSpineSBRTLib.mrml.results import write_results_table
        from SIBSpineSBRTLib.mrml.slicerrt_dvh import crosscheck_with_slicerrt, slicerrt_available
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.review.pipeline import review_case

        scene = scene or slicer.mrmlScene
        if segmentationNode is None or doseNode is None:
            raise ValueError(_("Choose a segmentation and a dose volume."))
        data = case_input_from_nodes(scene, segmentationNode, doseNode, level)
        result = review_case(data, load_protocol(protocolId))
        store_review(scene, segmentationNode, result)
        if slicerrt_available():  # SlicerRT's DVH cross-checks every metric; disagreements are judged conservatively
            result = crosscheck_with_slicerrt(scene, segmentationNode, doseNode, result)
            write_results_table(scene, result)
        logging.info(f"SIBSpineSBRT: {result.case} {result.level}: verdict {result.verdict}")
        return result

    def runDemo(self, scene=None):
        """The built-in synthetic T8 case, reviewed (the same function the command line and pytest run)."""
        from SIBSpineSBRTLib.review.demo import run_demo_review

        return run_demo_review(scene or slicer.mrmlScene)


#
# SIBSpineSBRTTest
#


class SIBSpineSBRTTest(ScriptedLoadableModuleTest):
    """Runs the same demo review and checks as the pytest suite (Testing/test_cli_demo.py)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoReview()

    def test_DemoReview(self):
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.review.demo import demo_result_problems

        self.delayDisplay(_("Reviewing the synthetic T8 case"))
        result, nodes = SIBSpineSBRTLogic().runDemo()
        self.assertEqual(demo_result_problems(result, load_protocol()), [])
        segmentation = nodes.segmentation.GetSegmentation()
        for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
            self.assertTrue(segmentation.GetSegmentIdBySegmentName(name), name)
        self.assertTrue(os.path.isfile(load_protocol().path))
        self.delayDisplay(_("Test passed"))
