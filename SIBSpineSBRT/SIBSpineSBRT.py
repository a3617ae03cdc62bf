import logging
import os
from typing import Annotated, Dict, Optional

import slicer
import vtk
from slicer import (
    vtkMRMLLinearTransformNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

from SIBSpineSBRTLib.protocol.model import DEFAULT_PROTOCOL, available_protocols, level_choices
from SIBSpineSBRTLib.review.readiness import BUILD as _BUILD
from SIBSpineSBRTLib.review.readiness import REPORT as _REPORT
from SIBSpineSBRTLib.review.readiness import RTSTRUCT as _RTSTRUCT

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
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The synthetic spine phantoms (four levels, passing and failing plans) in the Sample Data module,
    generated locally when chosen: no download."""
    from SIBSpineSBRTLib.phantoms.sample_data import register_with_slicer_sample_data

    register_with_slicer_sample_data(os.path.join(os.path.dirname(__file__), "Resources", "Icons", "SIBSpineSBRT.png"))


#
# SIBSpineSBRTParameterNode
#


@parameterNodeWrapper
class SIBSpineSBRTParameterNode:
    """The review's inputs and its stored results: saved with the scene, so reopening it restores the review."""

    ct: Optional[vtkMRMLScalarVolumeNode]
    mr: Optional[vtkMRMLScalarVolumeNode]
    mrTransform: Optional[vtkMRMLLinearTransformNode]
    segmentation: Optional[vtkMRMLSegmentationNode]
    dose: Optional[vtkMRMLScalarVolumeNode]
    level: Annotated[str, Choice(list(level_choices()))] = "T8"  # single levels, then ranges (T12-L1, L5-S1)
    protocol: Annotated[str, Choice(list(available_protocols()) or [DEFAULT_PROTOCOL])] = DEFAULT_PROTOCOL
    mrOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    roleOverrides: Dict[str, str]
    results: Optional[vtkMRMLTableNode]


#
# SIBSpineSBRTWidget
#


class SIBSpineSBRTWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the panel to the logic; every decision (what is possible, statuses, colours) comes from the library."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingRoles = False
        self._roleTableKey = None
        self._defaultToolTips = {}

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SIBSpineSBRT.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SIBSpineSBRTLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.loadCaseButton.connect("clicked(bool)", self.onLoadCase)
        self.ui.registerButton.connect("clicked(bool)", self.onRegister)
        self.ui.buildVolumesButton.connect("clicked(bool)", self.onBuildVolumes)
        self.ui.evaluateButton.connect("clicked(bool)", self.onEvaluate)
        self.ui.normaliseButton.connect("clicked(bool)", self.onNormalise)
        self.ui.layoutButton.connect("clicked(bool)", self.onLayout)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReport)
        self.ui.exportRtstructButton.connect("clicked(bool)", self.onExportRtstruct)
        self.ui.demoButton.connect("clicked(bool)", self.onDemo)
        # The role table follows the parameter node (segmentation, protocol, overrides): refreshed from its
        # ModifiedEvent, never from the selector's signal, which PythonQt may deliver before connectGui has
        # written the new node into the parameter node (slots run in connection order).
        self.ui.mrOpacitySlider.connect("valueChanged(double)", self.logic.setMROpacity)

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
        self.logic.session.forget()  # a closed scene's case and review are never acted on again

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
            self._roleTableKey = None
            self._updateButtons()
            if self._parameterNode.results is not None:  # a reopened scene shows its stored review
                self.showResults(self._parameterNode.results)

    # -- state -------------------------------------------------------------------------------------------

    def _updateButtons(self, caller=None, event=None) -> None:
        from SIBSpineSBRTLib.review import readiness as r

        p = self._parameterNode
        if p is None:
            return
        key = r.role_table_key(p.segmentation, p.protocol, dict(p.roleOverrides))
        if key != self._roleTableKey:
            self._roleTableKey = key
            self._fillRoleTable()
        missing = r.missing_for(self.logic.panelState(p))
        for action, button in (
            (r.REGISTER, self.ui.registerButton),
            (r.BUILD, self.ui.buildVolumesButton),
            (r.EVALUATE, self.ui.evaluateButton),
            (r.NORMALISE, self.ui.normaliseButton),
            (r.REPORT, self.ui.exportReportButton),
            (r.RTSTRUCT, self.ui.exportRtstructButton),
        ):
            default = self._defaultToolTips.setdefault(action, button.toolTip)
            button.enabled = not missing[action]
            button.toolTip = "\n".join(missing[action]) if missing[action] else default

    def _fillRoleTable(self, node=None) -> None:
        """Protocol role -> segment, as the library resolves it; a combo box per role to change it."""
        import qt

        p = self._parameterNode
        table = self.ui.roleTable
        table.clear()
        table.setColumnCount(2)
        table.setHorizontalHeaderLabels([_("Protocol structure"), _("Segment")])
        rows = self.logic.roleRows(p) if p is not None else []
        table.setRowCount(len(rows))
        self._updatingRoles = True
        for n, (role, chosen, names) in enumerate(rows):
            table.setItem(n, 0, qt.QTableWidgetItem(role))
            combo = qt.QComboBox()
            combo.addItems(["(none)"] + names)
            combo.setCurrentText(chosen or "(none)")
            combo.connect("currentTextChanged(QString)", lambda text, role=role: self._onRoleChanged(role, text))
            table.setCellWidget(n, 1, combo)
        self._updatingRoles = False
        self._roleTableKey = None
        self._defaultToolTips = {}
        table.resizeColumnsToContents()

    def _onRoleChanged(self, role: str, text: str) -> None:
        if self._updatingRoles or self._parameterNode is None:
            return
        overrides = dict(self._parameterNode.roleOverrides)
        if text == "(none)":
            overrides.pop(role, None)
        else:
            overrides[role] = text
        self._parameterNode.roleOverrides = overrides

    def _progress(self, fraction: float, message: str = "") -> None:
        bar = self.ui.progressBar
        bar.visible = fraction < 1.0
        bar.value = int(100 * fraction)
        bar.format = f"{message} %p%" if message else "%p%"
        slicer.app.processEvents()

    # -- actions -----------------------------------------------------------------------------------------

    def onLoadCase(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Loading the DICOM case failed."), waitCursor=True):
            self.logic.loadDicomCase(self.ui.caseDirectoryPathLineEdit.currentPath, self._parameterNode)
            self._fillRoleTable()

    def onRegister(self) -> None:
        # tryWithErrorDisplay shows the error and raises it again (Base/Python/slicer/util.py, 5.6-main): the
        # progress bar is hidden in ``finally``, not after the block
        try:
            with slicer.util.tryWithErrorDisplay(_("MR-to-CT registration failed."), waitCursor=True):
                self.logic.register(self._parameterNode, self._progress)
        finally:
            self._progress(1.0)

    def onBuildVolumes(self) -> None:
        self._ensurePackages(_BUILD)  # shapely for contour-exact margins; declined: the cube rule, said in the recipe
        with slicer.util.tryWithErrorDisplay(_("Building the planning volumes failed."), waitCursor=True):
            messages = self.logic.buildVolumes(self._parameterNode)
            self.ui.messagesLabel.text = "\n".join(messages)

    def onEvaluate(self) -> None:
        self._ensurePackages(_BUILD)  # as for Build: the evaluation builds the planning volumes too
        try:
            with slicer.util.tryWithErrorDisplay(_("Plan evaluation failed."), waitCursor=True):
                self._progress(0.1, _("Evaluating"))
                self.logic.evaluate(self._parameterNode)
                self.showResults(self._parameterNode.results)
                self.logic.showReviewLayout(self._parameterNode)
        finally:
            self._progress(1.0)

    def onNormalise(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Normalisation failed."), waitCursor=True):
            self.logic.normalise(self._parameterNode)
            self.showResults(self._parameterNode.results)

    def onLayout(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Setting up the review layout failed.")):
            self.logic.showReviewLayout(self._parameterNode)

    def onExportReport(self) -> None:
        import qt

        path = qt.QFileDialog.getSaveFileName(
            None, _("Export report"), "report.pdf", "PDF (*.pdf);;HTML, one self-contained file (*.html)"
        )
        if path and self._ensurePackages(_REPORT):
            with slicer.util.tryWithErrorDisplay(_("Writing the report failed."), waitCursor=True):
                self.logic.exportReport(path, self._parameterNode)

    def _ensurePackages(self, action: str) -> bool:
        """Offer to install the pinned packages ``action`` needs that Slicer does not bundle; False if declined."""
        from SIBSpineSBRTLib.review.readiness import missing_packages

        need = missing_packages(action)
        if not need:
            return True
        question = _("This needs Python packages that Slicer does not include: {packages}. Install them now?").format(
            packages=", ".join(need)
        )
        if not slicer.util.confirmOkCancelDisplay(question):
            return False
        with slicer.util.tryWithErrorDisplay(_("Installing {packages} failed.").format(packages=", ".join(need))):
            slicer.util.pip_install(" ".join(need))  # a string: the form every Slicer 5.x accepts
        import importlib

        importlib.invalidate_caches()
        return not missing_packages(action)

    def onExportRtstruct(self) -> None:
        import qt

        path = qt.QFileDialog.getSaveFileName(None, _("Export RTSTRUCT"), "planning_volumes.dcm", "DICOM (*.dcm)")
        if path and self._ensurePackages(_RTSTRUCT):
            with slicer.util.tryWithErrorDisplay(_("Writing the RTSTRUCT failed."), waitCursor=True):
                self.logic.exportRtstruct(path, self._parameterNode)

    def onDemo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Demo review failed."), waitCursor=True):
            self.logic.runDemo(self._parameterNode)
            self.showResults(self._parameterNode.results)
            self.logic.showReviewLayout(self._parameterNode)
            self._fillRoleTable()

    # -- results -----------------------------------------------------------------------------------------

    def showResults(self, tableNode) -> None:
        """Show the stored review: the verdict with the NON-PROTOCOL banner and the problems beside it, the
        protocol limits, the local defaults to confirm (apart, lighter) and what was not evaluated. Every text and
        colour comes from ``results_panel`` (presentation only here)."""
        from SIBSpineSBRTLib.mrml.results import results_panel

        panel = results_panel(tableNode)
        ui = self.ui
        ui.verdictLabel.text = panel.verdict_text
        ui.verdictLabel.styleSheet = (
            f"QLabel {{ background: {panel.verdict_hex}; color: white; font-weight: bold; font-size: 14px; "
            "padding: 4px 8px; }"
        )
        self._showText(
            ui.nonProtocolLabel,
            panel.non_protocol_text,
            f"QLabel {{ border: 3px solid {panel.non_protocol_hex}; background: #fff3e0; color: #1d2430; "
            "padding: 4px; font-weight: bold; }",
        )
        self._showText(
            ui.problemsLabel,
            panel.problems_text,
            f"QLabel {{ border: 2px solid {panel.problem_hex}; background: #fdecea; color: #1d2430; padding: 4px; }}",
        )
        ui.protocolLimitsLabel.text = panel.protocol_heading
        self._fillResultsTable(ui.resultsTable, panel.columns, panel.protocol_rows)
        self._showText(
            ui.advisoryLabel, panel.advisory_text, f"QLabel {{ color: {panel.advisory_hex}; font-style: italic; }}"
        )
        ui.advisoryTable.visible = bool(panel.advisory_rows)
        self._fillResultsTable(ui.advisoryTable, panel.columns, panel.advisory_rows)
        self._showText(ui.advisorySummaryLabel, panel.advisory_summary)
        self._showText(ui.notEvaluatedLabel, panel.not_evaluated_text)
        ui.messagesLabel.text = panel.messages_text

    @staticmethod
    def _showText(label, text: str, styleSheet: str = "") -> None:
        label.text = text
        label.styleSheet = styleSheet
        label.visible = bool(text)

    @staticmethod
    def _fillResultsTable(table, columns, rows) -> None:
        import qt

        table.clear()
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels([_(c) for c in columns])
        table.setRowCount(len(rows))
        status_col = list(columns).index("Status")
        for n, row in enumerate(rows):
            for col, text in enumerate(row.cells):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(row.tooltip)
                if col == status_col:
                    item.setBackground(qt.QBrush(qt.QColor(row.status_hex)))
                table.setItem(n, col, item)
        table.resizeColumnsToContents()


#
# SIBSpineSBRTLogic
#


class SIBSpineSBRTLogic(ScriptedLoadableModuleLogic):
    """Runs the library on the application's scene; usable without a GUI. The last review is kept in memory
    for the what-if and the report; the parameter node keeps the inputs and the results table."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        from SIBSpineSBRTLib.review.session import ReviewSession

        self.session = ReviewSession()  # the loaded case and last review, tied to their nodes

    def getParameterNode(self):
        return SIBSpineSBRTParameterNode(super().getParameterNode())

    def panelState(self, p):
        from SIBSpineSBRTLib.review.planning_volumes import PTV
        from SIBSpineSBRTLib.review.readiness import PanelState

        seg = p.segmentation
        built = seg is not None and bool(seg.GetSegmentation().GetSegmentIdBySegmentName(PTV))
        result = self.session.result_for(slicer.mrmlScene, seg, p.dose)
        return PanelState(
            ct=p.ct is not None,
            mr=p.mr is not None,
            segmentation=seg is not None,
            dose=p.dose is not None,
            level=p.level,
            evaluated=result is not None,
            prescription_metric_known=result is not None and result.protocol.prescription_structure in result.dvhs,
            volumes_built=built,
            ct_from_dicom=self.session.case_for(slicer.mrmlScene, p.ct) is not None,
        )

    def roleRows(self, p):
        from SIBSpineSBRTLib.mrml.segmentations import segment_names
        from SIBSpineSBRTLib.protocol.model import ProtocolError, load_protocol
        from SIBSpineSBRTLib.protocol.roles import role_choices

        if p.segmentation is None:
            return []
        names = [name for _sid, name in segment_names(p.segmentation)]
        try:
            return role_choices(load_protocol(p.protocol), names, dict(p.roleOverrides))
        except ProtocolError as exc:
            logging.warning(str(exc))
            return role_choices(load_protocol(p.protocol), names, {})

    def loadDicomCase(self, folder: str, p) -> None:
        from SIBSpineSBRTLib.caseio.slicer_dicom import load_case_with_slicer_dicom
        from SIBSpineSBRTLib.protocol.model import level_from_text

        if not folder or not os.path.isdir(folder):
            raise ValueError(_("Choose the DICOM case folder first."))
        case = load_case_with_slicer_dicom(folder)
        self.session.load(case)
        p.ct, p.segmentation, p.dose = case.ct, case.segmentation, case.dose
        p.mr = case.mr[0] if case.mr else None
        level = level_from_text(case.prescription.plan_label) if case.prescription is not None else None
        if level:
            p.level = level
        for message in case.messages:
            logging.info(message)
        if getattr(case, "dose_problem", ""):
            slicer.util.warningDisplay(_("No dose loaded: {problem}").format(problem=case.dose_problem))

    def register(self, p, progress=None) -> None:
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.registration.mrml_transform import register_volume_nodes
        from SIBSpineSBRTLib.review.fusion import registration_region

        region = None  # around the target when the segmentation has a GTV or CTV; else the whole images
        if p.segmentation is not None:
            region = registration_region(p.ct, p.segmentation, load_protocol(p.protocol), dict(p.roleOverrides))
        result, transform = register_volume_nodes(
            slicer.mrmlScene, p.ct, p.mr, fixed_mask=region, progress=progress, transform_node=p.mrTransform
        )
        p.mrTransform = transform
        logging.info(f"SIBSpineSBRT: MR registered to CT ({result})")

    def _planned(self, p):
        from SIBSpineSBRTLib.mrml.segmentations import read_segments, reference_geometry
        from SIBSpineSBRTLib.mrml.volumes import volume_geometry
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.review.planning_volumes import plan_volumes

        geometry = volume_geometry(p.ct) if p.ct is not None else reference_geometry(p.segmentation)
        protocol = load_protocol(p.protocol)
        masks = read_segments(p.segmentation, geometry=geometry)
        return protocol, plan_volumes(protocol, masks, p.level, dict(p.roleOverrides))

    def buildVolumes(self, p) -> list:
        """Write the planning volumes as new segments; returns what could not be built and why."""
        from SIBSpineSBRTLib.mrml.segmentations import write_derived_segment

        protocol, planned = self._planned(p)
        for name, volume in planned.volumes.items():
            write_derived_segment(p.segmentation, volume.mask, name, protocol.structures[name].color, volume.recipe)
        return [planned.problem_message(protocol, n) for n in planned.problems]

    def evaluate(self, p, scene=None):
        """Build the planning volumes, judge the plan, store results (table, DVH chart) in the scene."""
        from SIBSpineSBRTLib.mrml.case import case_input_from_nodes, store_review
        from SIBSpineSBRTLib.mrml.slicerrt_dvh import crosscheck_with_slicerrt, slicerrt_available
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.review.dicom_review import with_plan_prescription
        from SIBSpineSBRTLib.review.pipeline import review_case

        scene = scene or slicer.mrmlScene
        data = case_input_from_nodes(scene, p.segmentation, p.dose, p.level, reference_volume=p.ct)
        case = self.session.case_for(scene, p.ct)
        if case is not None and case.segmentation is p.segmentation:
            data = with_plan_prescription(data, case)  # the plan's fractionation stops a false pass
        result = review_case(data, load_protocol(p.protocol), dict(p.roleOverrides))
        store_review(scene, p.segmentation, result)
        if slicerrt_available() and p.dose is not None:  # SlicerRT's DVH cross-checks every metric
            result = crosscheck_with_slicerrt(scene, p.segmentation, p.dose, result)
        return self._store(p, result, scene)

    def _store(self, p, result, scene):
        from SIBSpineSBRTLib.mrml.plots import write_dvh_chart
        from SIBSpineSBRTLib.mrml.results import write_results_table

        p.results = write_results_table(scene, result, p.results)
        write_dvh_chart(scene, result)
        self.session.remember(result, p.segmentation, p.dose)
        logging.info(f"SIBSpineSBRT: {result.case} {result.level}: verdict {result.verdict}")
        return result

    def normalise(self, p, scene=None):
        """What-if: the dose scaled so the prescription metric equals the prescription, as a new dose node."""
        from SIBSpineSBRTLib.mrml.case import add_dose_node
        from SIBSpineSBRTLib.review.whatif import normalise_to_prescription

        scene = scene or slicer.mrmlScene
        last = self.session.result_for(scene, p.segmentation, p.dose)
        if last is None:
            raise ValueError(_("Evaluate the plan first."))
        what = normalise_to_prescription(last)
        add_dose_node(scene, what.dose)
        return self._store(p, what.result, scene)

    def showReviewLayout(self, p) -> None:
        from SIBSpineSBRTLib.mrml import views
        from SIBSpineSBRTLib.mrml.plots import CHART_NAME
        from SIBSpineSBRTLib.protocol.model import load_protocol

        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # --no-main-window: no views
            return
        views.register_review_layout(layoutManager.layoutLogic().GetLayoutNode())
        layoutManager.setLayout(views.REVIEW_LAYOUT_ID)
        if p.ct is not None:
            views.show_review(
                slicer.mrmlScene,
                p.ct,
                p.dose,
                p.mr,
                p.segmentation,
                load_protocol(p.protocol).prescription_gy,
                p.mrOpacity,
            )
            for name in (views.CT_VIEW, views.FUSION_VIEW, views.SAGITTAL_VIEW):
                layoutManager.sliceWidget(name).sliceLogic().FitSliceToAll()
        if p.results is not None and layoutManager.tableViewCount > 0:
            p.results.SetUseColumnTitleAsColumnHeader(True)
            layoutManager.tableWidget(0).mrmlTableViewNode().SetTableNodeID(p.results.GetID())
        chart = slicer.mrmlScene.GetFirstNodeByName(CHART_NAME)
        if chart is not None and layoutManager.plotViewCount > 0:
            layoutManager.plotWidget(0).mrmlPlotViewNode().SetPlotChartNodeID(chart.GetID())

    def setMROpacity(self, value: float) -> None:
        from SIBSpineSBRTLib.mrml.views import set_mr_opacity

        set_mr_opacity(slicer.mrmlScene, value)

    def exportReport(self, path: str, p) -> None:
        from SIBSpineSBRTLib.registration.mrml_transform import transform_to_parent
        from SIBSpineSBRTLib.report.outputs import write_report_file

        last = self.session.result_for(slicer.mrmlScene, p.segmentation, p.dose)
        if last is None:
            raise ValueError(_("Evaluate the plan first."))
        mr_to_ct = transform_to_parent(p.mrTransform) if p.mrTransform is not None else None
        write_report_file(last, path, p.ct, p.mr, mr_to_ct)

    def exportRtstruct(self, path: str, p) -> None:
        from SIBSpineSBRTLib.caseio.export import write_planning_volumes

        case = self.session.case_for(slicer.mrmlScene, p.ct)
        if case is None:
            raise ValueError(_("Load the case with 'Load' (DICOM case folder) so the RTSTRUCT can reference its CT."))
        protocol, planned = self._planned(p)
        if planned.problems:
            raise ValueError(" ".join(planned.problem_message(protocol, n) for n in planned.problems))
        colors = {n: protocol.structures[n].color for n in planned.volumes}
        write_planning_volumes(case, planned.volumes, path, colors)

    def runDemo(self, p=None, scene=None):
        """The built-in thoracic teaching case (MR registered), reviewed: the same function as the CLI and pytest."""
        from SIBSpineSBRTLib.review.demo import run_demo_review

        scene = scene or slicer.mrmlScene
        result, nodes = run_demo_review(scene, register_mr=True)
        if p is not None:
            p.ct, p.segmentation, p.dose, p.level = nodes.ct, nodes.segmentation, nodes.dose, result.level
            p.mr = nodes.mr
            p.mrTransform = nodes.mr.GetParentTransformNode() if nodes.mr is not None else None
            self._store(p, result, scene)
        else:
            self.session.remember(result, nodes.segmentation, nodes.dose)
        return result, nodes


#
# SIBSpineSBRTTest
#


class SIBSpineSBRTTest(ScriptedLoadableModuleTest):
    """Runs the same demo review and checks as the pytest suite (Testing/test_cli_demo.py), then the DICOM path
    through Slicer's DICOM database and SlicerRT against the plain-Python review of the same folder."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoReview()
        self.setUp()
        self.test_ParameterNodeRestoresReview()
        self.setUp()
        self.test_DicomCaseThroughSlicerRT()

    def test_DemoReview(self):
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.review.demo import demo_result_problems

        self.delayDisplay(_("Reviewing the synthetic T8 case"))
        result, nodes = SIBSpineSBRTLogic().runDemo()
        self.assertEqual(demo_result_problems(result, load_protocol()), [])
        segmentation = nodes.segmentation.GetSegmentation()
        for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
            self.assertTrue(segmentation.GetSegmentIdBySegmentName(name), name)
        self.delayDisplay(_("Test passed"))

    def test_ParameterNodeRestoresReview(self):
        from SIBSpineSBRTLib.mrml.results import read_results_table

        logic = SIBSpineSBRTLogic()
        p = logic.getParameterNode()
        result, _nodes = logic.runDemo(p)
        rows = read_results_table(p.results)
        self.assertEqual(
            [(r["structure"], r["metric"], r["status"]) for r in rows],
            [(r.structure, r.metric, r.status) for r in result.rows],
        )
        self.assertEqual(p.level, "T8")

    def test_DicomCaseThroughSlicerRT(self):
        """Export the thoracic phantom as DICOM, load it through the DICOM database and SlicerRT, build, evaluate
        with the SlicerRT cross-check, export the report and RTSTRUCT; then review the same folder through the
        pydicom path and compare the two metrics documents (report/compare.py)."""
        import tempfile

        from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
        from SIBSpineSBRTLib.caseio.dicom_write import export_case
        from SIBSpineSBRTLib.geometry.masks import Mask
        from SIBSpineSBRTLib.mrml.slicerrt_dvh import slicerrt_available
        from SIBSpineSBRTLib.protocol.model import load_protocol
        from SIBSpineSBRTLib.report.compare import metrics_differences
        from SIBSpineSBRTLib.report.metrics_json import metrics_dict
        from SIBSpineSBRTLib.review.demo import build_teaching_case
        from SIBSpineSBRTLib.review.dicom_review import review_dicom_case

        if not slicerrt_available():
            message = _("SlicerRT is not loaded: the DICOM test is skipped.")
            hint = _("With --testing, add SlicerRT's module folders to --additional-module-paths.")
            self.delayDisplay(f"{message} {hint}")
            return
        folder = tempfile.mkdtemp(prefix="SIBSpineSBRT-selftest-")
        case = build_teaching_case("thoracic", "pass")
        masks = {n: Mask(m, case.ct_geometry, n) for n, m in case.segments.items()}
        export_case(os.path.join(folder, "case"), case, masks, case.colors)

        self.delayDisplay(_("Loading the DICOM case through the DICOM database and SlicerRT"))
        logic = SIBSpineSBRTLogic()
        p = logic.getParameterNode()
        logic.loadDicomCase(os.path.join(folder, "case"), p)
        self.assertEqual(p.level, "T8")  # from the RTPLAN label
        self.assertEqual(logic.buildVolumes(p), [])
        result = logic.evaluate(p)
        self.assertTrue(any(r.crosscheck is not None for r in result.rows), "SlicerRT's DVH cross-checked no row")
        logic.exportReport(os.path.join(folder, "report.pdf"), p)
        logic.exportRtstruct(os.path.join(folder, "planning_volumes.dcm"), p)
        self.assertTrue(os.path.getsize(os.path.join(folder, "report.pdf")) > 10000)
        in_slicer = metrics_dict(result)

        slicer.mrmlScene.Clear()
        plain = load_dicom_case(os.path.join(folder, "case"), slicer.mrmlScene, on_dose_error="record")
        reference = metrics_dict(review_dicom_case(plain, load_protocol()))
        self.assertEqual(metrics_differences(in_slicer, reference), [])
        self.delayDisplay(_("Test passed"))
