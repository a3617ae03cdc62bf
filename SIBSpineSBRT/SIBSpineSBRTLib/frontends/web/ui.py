"""The web demo's trame app: trame-slicer slice views, the controls and the panel, bound to ``review.teaching``.

Nothing is decided here: the case steps, statuses, colours, hover texts, quiz and what-ifs come from
``review.teaching``; the views are set by ``mrml.views`` (the review layout of the Slicer module). Work that
touches the scene runs on the server's event loop; pure numpy work (building a teaching case, a review, a
what-if, the DVH figure) runs in a worker thread so the views stay responsive.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from trame.app import asynchronous, get_server
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_slicer.app.logic.slice_view_logic import connect_slice_view_slider_to_state
from trame_slicer.app.ui.slider import Slider
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import RemoteViewFactory
from trame_slicer.views import (
    Layout,
    LayoutDirection,
    NoScheduleRendering,
    SliceView,
    ViewLayoutDefinition,
    ViewProps,
    ViewType,
)
from trame_vuetify.ui.vuetify3 import VAppLayout

from ...mrml import views as mviews
from ...review import teaching
from ...review.demo import CASES, VARIANTS
from ...review.readiness import BUILD, EVALUATE
from .app import seconds_since_process_start

log = logging.getLogger(__name__)

#: The three slice views: layout name (as in ``mrml.views``), orientation, caption, colour.
VIEWS = (
    (mviews.FUSION_VIEW, "Axial", "MR/CT fusion - axial", "#8E44AD"),
    (mviews.CT_VIEW, "Axial", "CT + dose colour-wash - axial", "#F34A33"),
    (mviews.SAGITTAL_VIEW, "Sagittal", "CT + dose colour-wash - sagittal", "#EDD54C"),
)
#: Scene nodes a case never owns (views, layout, singletons): kept when a case is closed.
_KEEP_CLASSES = (
    "vtkMRMLSliceNode",
    "vtkMRMLSliceCompositeNode",
    "vtkMRMLAbstractViewNode",
    "vtkMRMLCrosshairNode",
    "vtkMRMLInteractionNode",
    "vtkMRMLSelectionNode",
    "vtkMRMLSubjectHierarchyNode",
    "vtkMRMLScriptedModuleNode",
    "vtkMRMLCameraNode",
)
WHATIF_NODE_NAME = "Dose (what-if)"


@dataclass
class InitialCase:
    kind: str  # "teaching" or "dicom"
    key: str  # a teaching case name, or "dicom"
    variant: str
    folder: Optional[Path] = None


def _slice_view(**kwargs) -> SliceView:
    """A slice view that does not render while it is being set up (a new view otherwise renders on every
    MRML change until the remote-rendering scheduler takes over: ~180 useless renders, >1 s at start-up)."""
    return SliceView(scheduled_render_strategy=NoScheduleRendering(), **kwargs)


def _action_button(label: str, button_id: str, click, missing: str, icon: str) -> None:
    """A toolbar action, disabled while busy or while the state list ``missing`` names what it lacks (the
    tooltip reads the list)."""
    with html.Span(title=(f"{missing}.join(' ')",), classes="mx-1"):
        v3.VBtn(
            label,
            id=button_id,
            click=click,
            disabled=(f"busy || {missing}.length > 0",),
            prepend_icon=icon,
            variant="tonal",
        )


def _hex(rgb) -> str:
    return "#" + "".join(f"{max(0, min(255, round(255 * float(c)))):02x}" for c in rgb[:3])


class WebReview:
    """The trame server, the Slicer scene and views, and the open ``teaching.ReviewSession``."""

    def __init__(self, executor, protocol, initial: InitialCase, cache_dir=None, level: Optional[str] = None):
        self.executor = executor
        self.protocol = protocol
        self.initial = initial
        self.level = level
        self.cache_dir = cache_dir  # where built teaching cases are kept (None: always rebuilt)
        self.session: Optional[teaching.ReviewSession] = None
        self.shown = None  # the result the panel shows: the review, or its what-if
        self._whatif_node = None
        self._whatif_request = ("whole", 1.0)
        self._whatif_done = ("whole", 1.0)
        self._whatif_task = None
        self._requested = (initial.key, initial.variant)
        self._lock = asyncio.Lock()
        self._baseline_ids: set = set()

        self.server = get_server(None, client_type="vue3")
        self.state, self.ctrl = self.server.state, self.server.controller
        self.slicer_app = SlicerApp()
        self.scene = self.slicer_app.scene
        self.slicer_app.view_manager.register_factory(
            RemoteViewFactory(
                self.server,
                _slice_view,
                ViewType.SLICE_VIEW,
                populate_view_ui_f=self._view_overlay,
                rca_encoder="png",  # lossless frames: the e2e test checks pixels
                target_fps=30.0,
                blur_fps=10.0,
                interactive_quality=50,
            )
        )
        self.layout_manager = LayoutManager(self.scene, self.slicer_app.view_manager, self.server)
        views = [
            ViewLayoutDefinition(name, ViewType.SLICE_VIEW, ViewProps(label=name, orientation=orientation, color=color))
            for name, orientation, _, color in VIEWS
        ]
        self.layout_manager.register_layout("review", Layout(LayoutDirection.Horizontal, views))
        self.layout_manager.set_layout("review")
        self._init_state()
        self._build_ui()
        self._bind()
        self.ctrl.on_server_ready.add(lambda **_: asynchronous.create_task(self._open_initial()))

    # -- state ---------------------------------------------------------------------------------------------

    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "SIB Spine SBRT review"
        items = [{"title": c.capitalize(), "value": c} for c in CASES]
        if self.initial.kind == "dicom":
            items.append({"title": "DICOM case folder", "value": "dicom"})
        s.case_items = items
        s.variant_items = list(VARIANTS)
        s.case_key, s.variant = self.initial.key, self.initial.variant
        s.phase, s.busy, s.error = "starting", False, ""
        s.title, s.fusion_note, s.has_mr, s.notes = "", "", False, []
        s.segments, s.derived_count = [], 0
        s.build_missing, s.evaluate_missing, s.whatif_missing = ["Loading the case."], ["Loading the case."], ["-"]
        s.report_missing = ["Loading the case."]
        s.mr_opacity = teaching.DEFAULT_MR_OPACITY
        s.ct_window = teaching.DEFAULT_CT_WINDOW
        s.ct_window_items = [{"title": v[0], "value": k} for k, v in teaching.CT_WINDOW_PRESETS.items()]
        s.whatif_modes = [{"title": m.label, "value": m.key} for m in teaching.WHATIF_MODES.values()]
        s.whatif_mode, s.whatif_factor, s.whatif_text, s.whatif_applied = teaching.WHOLE, 1.0, "", "whole:1.00"
        self._set_whatif_mode_limits(teaching.WHOLE)
        s.evaluated, s.rows, s.advisory_rows, s.verdict, s.dvh_src = False, [], [], {}, ""
        s.quiz_enabled, s.quiz_answered, s.quiz_feedback = False, False, ""
        s.quiz_choices = [{"value": k, "title": v} for k, v in teaching.QUIZ_CHOICES.items()]

    def _set_whatif_mode_limits(self, mode: str) -> None:
        m = teaching.WHATIF_MODES[mode]
        self.state.whatif_min, self.state.whatif_max, self.state.whatif_step = m.minimum, m.maximum, m.step
        self.state.whatif_help = m.help

    def _bind(self) -> None:
        s = self.state

        @s.change("case_key", "variant")
        def _case(case_key, variant, **_):
            if (case_key, variant) != self._requested and s.phase != "starting":
                self._requested = (case_key, variant)
                asynchronous.create_task(self._open(case_key, variant))

        @s.change("mr_opacity")
        def _mr(mr_opacity, **_):
            if self.session is not None and self.session.has_mr:
                mviews.set_mr_opacity(self.scene, float(mr_opacity))
                self._render()

        @s.change("ct_window")
        def _window(ct_window, **_):
            self._apply_ct_window(ct_window)

        @s.change("whatif_mode")
        def _mode(whatif_mode, **_):
            self._set_whatif_mode_limits(whatif_mode)
            s.whatif_factor = 1.0
            self._request_whatif(whatif_mode, 1.0)

        @s.change("whatif_factor")
        def _factor(whatif_factor, whatif_mode, **_):
            self._request_whatif(whatif_mode, float(whatif_factor))

        @self.ctrl.trigger("report_pdf")
        def _report_pdf():
            try:
                data = teaching.report_pdf(self.session)
            except Exception as exc:  # shown on the page; nothing is downloaded
                self._fail(exc)
                return None
            return self.server.protocol.addAttachment(data)

        @s.change("quiz_enabled")
        def _quiz(quiz_enabled, **_):
            if self.session is not None:
                self.session.quiz.enabled = bool(quiz_enabled)
                self.session.quiz.reset()
                self._publish_panel()

    # -- UI ------------------------------------------------------------------------------------------------

    def _view_overlay(self, server, view_id: str, view) -> None:
        """Caption (and the fusion view's "no MR" note) over each view, and its slice slider."""
        tag = view.get_singleton_tag()
        caption = next(c for n, _, c, _ in VIEWS if n == tag)
        with html.Div(
            id=f"view-{tag}",
            style="position:absolute; top:4px; left:8px; right:8px; color:#fff; font:12px/1.35 sans-serif;"
            " text-shadow:0 0 3px #000, 0 0 2px #000; pointer-events:none;",
        ):
            html.Div(caption, style="font-weight:bold;")
            if tag == mviews.FUSION_VIEW:
                html.Div("{{ fusion_note }}", v_if="fusion_note", id="fusion-note", style="color:#ffd54f;")
        with html.Div(style="position:absolute; bottom:0; left:0; width:100%;"):
            Slider(typed_state=connect_slice_view_slider_to_state(server, view), theme="dark", density="compact")

    def _build_ui(self) -> None:
        with VAppLayout(self.server, full_height=True) as layout:
            self.ui = layout
            html.Div(
                id="app-status",
                style="display:none",
                raw_attrs=[
                    ':data-phase="phase"',
                    ':data-busy="busy"',
                    ':data-derived="derived_count"',
                    ':data-evaluated="evaluated"',
                    ':data-whatif="whatif_applied"',
                    ":data-quiz=\"quiz_enabled ? (quiz_answered ? 'answered' : 'waiting') : 'off'\"",
                ],
            )
            self._toolbar()
            self._drawer()
            with v3.VMain():
                with html.Div(style="display:flex; flex-direction:column; height:calc(100vh - 48px);"):
                    with html.Div(style="flex:0 0 54%; display:flex; position:relative; min-height:0;"):
                        self.layout_manager.initialize_layout_grid(layout)
                        html.Div(
                            "{{ phase === 'error' ? error : 'Loading the case...' }}",
                            v_if="phase !== 'loaded'",
                            id="views-loading",
                            style="position:absolute; inset:0; display:flex; align-items:center;"
                            " justify-content:center; color:#fff; background:rgba(0,0,0,.55); font:16px sans-serif;",
                        )
                    with html.Div(style="flex:1 1 auto; display:flex; min-height:0; border-top:1px solid #bbb;"):
                        self._panel()
                        with html.Div(
                            style="flex:0 0 40%; display:flex; align-items:center; justify-content:center;"
                            " padding:4px; min-width:0; border-left:1px solid #ddd; background:#fff;"
                        ):
                            html.Img(
                                id="dvh",
                                v_if="dvh_src",
                                src=("dvh_src",),
                                alt="DVH with the protocol's limits",
                                style="max-width:100%; max-height:100%; object-fit:contain;",
                            )
                            html.Div("The DVH appears after Evaluate.", v_else=True, style="color:#777;")

    def _toolbar(self) -> None:
        with v3.VAppBar(density="compact", color="#263238", theme="dark", flat=True):
            v3.VAppBarTitle("SIB Spine SBRT - plan review for residents", classes="text-subtitle-1 flex-grow-0 mr-4")
            v3.VSelect(
                id="select-case",
                v_model=("case_key",),
                items=("case_items",),
                label="Case",
                density="compact",
                hide_details=True,
                disabled=("busy",),
                style="max-width:170px",
                classes="mx-1",
            )
            v3.VSelect(
                id="select-variant",
                v_model=("variant",),
                items=("variant_items",),
                label="Variant",
                density="compact",
                hide_details=True,
                disabled=("busy || case_key === 'dicom'",),
                style="max-width:120px",
                classes="mx-1",
            )
            _action_button("Build planning volumes", "btn-build", self.build, "build_missing", "mdi-vector-union")
            _action_button("Evaluate", "btn-evaluate", self.evaluate, "evaluate_missing", "mdi-clipboard-check-outline")
            # the PDF is made on the server when asked for, and saved by the browser
            download = "utils.download('sibspine_review.pdf', trigger('report_pdf'), 'application/pdf')"
            _action_button("Report (PDF)", "btn-report", download, "report_missing", "mdi-file-pdf-box")
            v3.VSpacer()
            v3.VSwitch(
                id="switch-quiz",
                v_model=("quiz_enabled",),
                label="Quiz mode",
                color="amber",
                hide_details=True,
                density="compact",
                classes="flex-grow-0 mx-3",
            )
            v3.VProgressLinear(indeterminate=True, active=("busy",), absolute=True, location="bottom", color="amber")

    def _drawer(self) -> None:
        with v3.VNavigationDrawer(permanent=True, width=272, classes="pa-3 text-body-2"):
            html.Div("{{ title }}", id="case-title", classes="font-weight-bold mb-2")
            html.Div("Structures", classes="text-overline")
            with html.Div(
                v_for="seg in segments",
                key="seg.id",
                classes="d-flex align-center",
                style="height:26px",
                raw_attrs=[':data-segment="seg.name"'],
            ):
                v3.VCheckboxBtn(
                    model_value=("seg.visible",),
                    update_modelValue=(self.toggle_segment, "[seg.id, $event]"),
                    density="compact",
                    classes="flex-grow-0 mr-1",
                )
                html.Span(
                    style=(
                        "`display:inline-block;width:12px;height:12px;margin-right:6px;border:1px solid #555;"
                        "background:${seg.color}`",
                    )
                )
                html.Span("{{ seg.name }}")
                html.Span(
                    "derived",
                    v_if="seg.derived",
                    classes="ml-2 text-caption",
                    style="color:#fff;background:#607d8b;border-radius:3px;padding:0 4px;",
                )
            html.Div("MR opacity", classes="text-overline mt-2")
            v3.VSlider(
                v_model=("mr_opacity",),
                min=0,
                max=1,
                step=0.05,
                disabled=("!has_mr",),
                hide_details=True,
                density="compact",
                thumb_label=True,
            )
            html.Div("No MR in this case.", v_if="!has_mr", classes="text-caption", style="color:#777")
            html.Div("CT window", classes="text-overline mt-2")
            v3.VSelect(v_model=("ct_window",), items=("ct_window_items",), density="compact", hide_details=True)
            html.Div("What-if", classes="text-overline mt-3")
            with v3.VBtnToggle(
                v_model=("whatif_mode",),
                mandatory=True,
                density="compact",
                divided=True,
                variant="outlined",
                disabled=("busy || whatif_missing.length > 0",),
                id="whatif-mode",
            ):
                v3.VBtn("{{ m.title }}", v_for="m in whatif_modes", key="m.value", value=("m.value",), size="small")
            with html.Div(id="whatif-slider", style="padding-top:26px"):  # room for the thumb label
                v3.VSlider(
                    v_model=("whatif_factor",),
                    min=("whatif_min",),
                    max=("whatif_max",),
                    step=("whatif_step",),
                    disabled=("whatif_missing.length > 0",),
                    hide_details=True,
                    density="compact",
                    thumb_label=True,
                )
            html.Div(
                "factor {{ Number(whatif_factor).toFixed(2) }}",
                id="whatif-factor",
                classes="text-caption",
            )
            html.Div("{{ whatif_missing.join(' ') }}", v_if="whatif_missing.length", classes="text-caption")
            html.Div("{{ whatif_help }}", classes="text-caption mt-1", style="color:#555")
            with html.Div(v_if="notes.length", classes="mt-3"):
                html.Div("Notes", classes="text-overline")
                html.Div("{{ n }}", v_for="(n, i) in notes", key="i", classes="text-caption mb-1")

    def _panel(self) -> None:
        with html.Div(id="panel", style="flex:1 1 60%; overflow:auto; padding:6px 10px; min-width:0;"):
            v3.VAlert(
                "{{ error }}", v_if="error && phase === 'loaded'", type="error", density="compact", classes="mb-1"
            )
            html.Div(
                "{{ verdict.text }}",
                id="verdict",
                v_if="evaluated",
                raw_attrs=[':data-verdict="verdict.verdict"'],
                style=("`font-weight:bold; font-size:15px; color:${verdict.color};`",),
            )
            with html.Div(
                v_if="evaluated && verdict.non_protocol",
                id="non-protocol",
                style=(
                    "`border:3px solid ${verdict.non_protocol_color}; background:#fff3e0; border-radius:4px;"
                    " margin:4px 0;`",
                ),
            ):
                html.Div(
                    "\u26a0 {{ verdict.non_protocol_title }}",
                    style=(
                        "`background:${verdict.non_protocol_color}; color:#fff; font-weight:bold; font-size:15px;"
                        " padding:3px 8px;`",
                    ),
                )
                with html.Ul(style="margin:2px 0 4px 22px; font-size:12.5px;"):
                    html.Li("{{ d }}", v_for="(d, i) in verdict.deviations", key="i")
            with html.Div(
                v_if="evaluated && verdict.problems && verdict.problems.length",
                id="review-problems",
                style="border:2px solid #d32f2f; background:#fdecea; border-radius:4px; margin:4px 0;"
                " padding:3px 8px; font-size:12.5px;",
            ):
                html.Div("{{ verdict.problems_heading }}", style="font-weight:bold;")
                with html.Ul(style="margin:2px 0 2px 18px;"):
                    html.Li("{{ m }}", v_for="(m, i) in verdict.problems", key="i")
            with html.Div(v_if="evaluated && quiz_enabled", id="quiz", classes="my-1"):
                with html.Div(v_if="!quiz_answered", classes="d-flex align-center flex-wrap"):
                    html.Span("Your judgement:", classes="mr-2 text-body-2")
                    v3.VBtn(
                        "{{ c.title }}",
                        v_for="c in quiz_choices",
                        key="c.value",
                        raw_attrs=[":id=\"'quiz-' + c.value\""],
                        click=(self.quiz_answer, "[c.value]"),
                        size="small",
                        variant="outlined",
                        classes="mr-1 my-1 text-none",
                    )
                html.Div("{{ quiz_feedback }}", v_else=True, id="quiz-feedback", classes="text-body-2")
            html.Div(
                "{{ whatif_text }}",
                v_if="evaluated && whatif_text",
                id="whatif-text",
                classes="text-caption",
                style="color:#6a1b9a;",
            )
            html.Div(
                "Press Build planning volumes, then Evaluate: the constraint table and the DVH appear here.",
                v_if="!evaluated",
                style="color:#777; padding:8px 0;",
            )
            html.Div(
                "{{ verdict.protocol_heading }}",
                v_if="evaluated",
                classes="text-overline",
                style="line-height:1.6;",
            )
            self._rows_table("constraint-table", "rows", "evaluated")
            with html.Div(
                v_if="evaluated && verdict.advisory",
                id="advisory-block",
                style=(
                    "`margin-top:10px; padding:4px 8px; background:#f3f5f7;"
                    " border-left:4px solid ${verdict.advisory_color};`",
                ),
            ):
                html.Div(
                    "{{ verdict.advisory_heading }}",
                    classes="text-overline",
                    style=("`line-height:1.6; color:${verdict.advisory_color};`",),
                )
                html.Div("{{ verdict.advisory_note }}", classes="text-caption", style="color:#555; font-style:italic;")
                self._rows_table("advisory-table", "advisory_rows", "advisory_rows.length", advisory=True)
                html.Div(
                    "{{ verdict.advisory_verdict_text }}",
                    v_if="verdict.advisory_verdict_text",
                    id="advisory-verdict",
                    classes="text-body-2 font-weight-bold mt-1",
                    style="color:#37474f;",
                )
                html.Div(
                    "{{ verdict.not_contoured_text }}",
                    v_if="verdict.not_contoured_text",
                    id="not-contoured",
                    classes="text-body-2",
                )
            html.Div(
                "{{ verdict.not_evaluated_text }}",
                v_if="evaluated && verdict.not_evaluated_text",
                id="not-evaluated",
                classes="text-body-2 mt-2",
                style="color:#555;",
            )

    @staticmethod
    def _rows_table(table_id: str, rows: str, show: str, advisory: bool = False) -> None:
        """A table of constraint rows (``rows``: the state list); every row has the class ``constraint-row`` and
        its status, key and value as data attributes; hovering it explains it. Advisory rows are greyed, with
        their source."""
        heads = ("Structure", "Metric", "Value", "Optimal", "Mandatory", "Status") + (("Source",) if advisory else ())
        text = "color:#555;" if advisory else ""
        with html.Table(
            id=table_id,
            v_if=show,
            style="width:100%; border-collapse:collapse; font-size:12.5px;" + text,
        ):
            with html.Tr(style="text-align:left; border-bottom:1px solid #999;"):
                for head in heads:
                    html.Th(head, style="padding:2px 6px;")
            with html.Tr(
                v_for=f"row in {rows}",
                key="row.key",
                classes="constraint-row",
                style="border-bottom:1px solid #e3e3e3; cursor:help;",
                raw_attrs=[
                    ':data-status="row.status"',
                    ':data-key="row.key"',
                    ':data-value="row.value"',
                    ':data-advisory="row.advisory"',
                ],
            ):
                html.Td("{{ row.structure }}", style="padding:2px 6px;")
                html.Td("{{ row.metric }}", style="padding:2px 6px;")
                html.Td("{{ row.value }}", style="padding:2px 6px; white-space:nowrap;")
                html.Td("{{ row.optimal }}", style="padding:2px 6px;")
                html.Td("{{ row.mandatory }}", style="padding:2px 6px;")
                html.Td(
                    "{{ row.label }}",
                    classes="row-status",
                    style=(
                        "`padding:2px 6px; font-weight:bold; color:${row.color};"
                        + (" opacity:.75;`" if advisory else "`"),
                    ),
                )
                if advisory:
                    html.Td("{{ row.source }}", style="padding:2px 6px; font-size:11px;")
                with v3.VTooltip(activator="parent", location="top", max_width=560, content_class="row-help"):
                    html.Div("{{ line }}", v_for="(line, i) in row.help", key="i", classes="mb-1")

    # -- scene helpers ---------------------------------------------------------------------------------------

    def _render(self) -> None:
        for view in self.slicer_app.view_manager.get_slice_views():
            view.schedule_render()

    def _node_ids(self) -> set:
        return {self.scene.GetNthNode(i).GetID() for i in range(self.scene.GetNumberOfNodes())}

    def _close_session(self) -> None:
        """Remove every node the open case added (views, layout and singletons stay)."""
        added = self._node_ids() - self._baseline_ids
        for node_id in sorted(added, reverse=True):
            node = self.scene.GetNodeByID(node_id)
            if node is None or node.GetSingletonTag() or any(node.IsA(c) for c in _KEEP_CLASSES):
                continue
            self.scene.RemoveNode(node)
        self.session, self.shown, self._whatif_node = None, None, None

    def _segment_items(self) -> List[Dict[str, object]]:
        from ...mrml.segmentations import DERIVED_TAG, segment_names, segment_tag

        seg = self.session.nodes.segmentation
        display = seg.GetDisplayNode()
        items = []
        for sid, name in segment_names(seg):
            items.append(
                {
                    "id": sid,
                    "name": name,
                    "color": _hex(seg.GetSegmentation().GetSegment(sid).GetColor()),
                    "visible": bool(display.GetSegmentVisibility(sid)) if display is not None else True,
                    "derived": segment_tag(seg, sid, DERIVED_TAG) == "1",
                }
            )
        return items

    def _apply_ct_window(self, key: str) -> None:
        if self.session is None or key not in teaching.CT_WINDOW_PRESETS:
            return
        _, window, level = teaching.CT_WINDOW_PRESETS[key]
        display = self.session.nodes.ct.GetDisplayNode()
        display.AutoWindowLevelOff()
        display.SetWindowLevel(window, level)
        self._render()

    def _show_session(self, dose_node=None) -> None:
        """The review layout of the Slicer module (``mrml.views.show_review``) on the three views."""
        n = self.session.nodes
        mviews.show_review(
            self.scene,
            n.ct,
            dose_node if dose_node is not None else n.dose,
            n.mr,
            n.segmentation,
            self.protocol.prescription_gy,
            float(self.state.mr_opacity),
        )
        display = n.segmentation.GetDisplayNode()
        if display is not None:
            display.SetSliceIntersectionThickness(2)
        self._render()

    def _centre_views(self) -> None:
        focus = self.session.focus_ras()
        for view in self.slicer_app.view_manager.get_slice_views():
            view.fit_view_to_content()
            if focus is not None:
                view.get_view_node().JumpSliceByOffsetting(*focus)
        self._render()

    def _show_whatif_dose(self, dose) -> None:
        """Show the what-if dose (a display-only volume; the plan's dose node is never changed)."""
        from ...mrml.volumes import add_volume, set_volume_geometry, vtk_image_from_array

        if dose is None or self.shown is None:  # factor 1: the plan's own dose
            self._show_session()
            return
        array = dose.array.astype("float32")
        if self._whatif_node is None:
            self._whatif_node = add_volume(self.scene, array, dose.geometry, WHATIF_NODE_NAME)
        else:
            set_volume_geometry(self._whatif_node, dose.geometry)
            self._whatif_node.SetAndObserveImageData(vtk_image_from_array(array))
        self._show_session(self._whatif_node)

    # -- publishing to the page -------------------------------------------------------------------------------

    def _publish_case(self) -> None:
        s, st = self.session, self.state
        st.title, st.fusion_note, st.has_mr = s.title, s.fusion_note, s.has_mr
        st.segments = self._segment_items()
        st.derived_count = sum(1 for i in st.segments if i["derived"])
        notes = list(s.notes)
        if s.planned is not None:
            notes += [s.planned.problem_message(s.protocol, name) for name in s.planned.problems]
        if s.result is not None:
            notes += [m for m in s.result.messages if m not in notes]
        st.notes = notes
        m = s.missing()
        st.build_missing, st.evaluate_missing, st.whatif_missing = m[BUILD], m[EVALUATE], m["what_if"]
        st.report_missing = m["report"]

    def _publish_panel(self, dvh_png: Optional[bytes] = None) -> None:
        s, st = self.session, self.state
        result = self.shown if self.shown is not None else (s.result if s is not None else None)
        if result is None:
            st.evaluated, st.rows, st.advisory_rows, st.verdict, st.dvh_src = False, [], [], {}, ""
            st.quiz_answered, st.quiz_feedback = False, ""
            return
        st.report_missing = teaching.report_missing(s)  # the quiz changes it too
        rows = teaching.panel_rows(result, s.quiz)
        st.rows = [r for r in rows if not r["advisory"]]
        st.advisory_rows = [r for r in rows if r["advisory"]]
        st.verdict = teaching.verdict_banner(result, s.quiz)
        st.quiz_answered = s.quiz.answer is not None
        st.quiz_feedback = s.quiz.feedback(s.result)
        if dvh_png is not None:
            st.dvh_src = "data:image/png;base64," + base64.b64encode(dvh_png).decode("ascii")
        st.evaluated = True

    # -- actions ------------------------------------------------------------------------------------------------

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, ValueError):  # the library's input errors: the message says what to do
            print(f"Error: {exc}", file=sys.stderr, flush=True)
        else:
            log.exception("web demo action failed")
        with self.state:
            self.state.error = f"{type(exc).__name__}: {exc}"
            self.state.busy = False

    async def _open_initial(self) -> None:
        await self._open(self.initial.key, self.initial.variant)

    async def _open(self, key: str, variant: str) -> None:
        async with self._lock:
            with self.state:
                self.state.busy, self.state.error = True, ""
                self.state.phase = "loading"
            try:
                if key == "dicom":
                    self._close_session()
                    self._baseline_ids = self._node_ids()
                    self.session = teaching.open_dicom_case(self.scene, self.initial.folder, self.protocol, self.level)
                    self.state.case_items = [
                        i if i["value"] != "dicom" else {"title": self.session.data.name, "value": "dicom"}
                        for i in self.state.case_items
                    ]
                else:
                    built = await self._run(teaching.prepare_teaching_case, key, variant, self.cache_dir)
                    self._close_session()
                    self._baseline_ids = self._node_ids()
                    self.session = teaching.open_teaching_case(self.scene, key, variant, self.protocol, built)
                self.session.quiz.enabled = bool(self.state.quiz_enabled)
                self._show_session()
                self._apply_ct_window(self.state.ct_window)
                self._centre_views()
                with self.state:
                    self._publish_case()
                    self._publish_panel()
                    self.state.whatif_factor, self.state.whatif_text = 1.0, ""
                    self.state.whatif_applied = f"{self.state.whatif_mode}:1.00"
                    self.state.phase, self.state.busy = "loaded", False
                print(
                    f"[timing] case in the views {seconds_since_process_start():.2f} s after process start: "
                    f"{self.session.title}",
                    flush=True,
                )
                self._whatif_request = self._whatif_done = (self.state.whatif_mode, 1.0)
            except Exception as exc:  # shown on the page; the server keeps running
                with self.state:
                    self.state.phase = "error"
                self._fail(exc)

    def build(self) -> None:
        if self.session is not None:
            asynchronous.create_task(self._build())

    async def _build(self) -> None:
        async with self._lock:
            try:
                teaching.build_volumes(self.session)  # fast (ms); writes the derived segments
                with self.state:
                    self._publish_case()
                self._render()
            except Exception as exc:
                self._fail(exc)

    def evaluate(self) -> None:
        if self.session is not None:
            asynchronous.create_task(self._evaluate())

    async def _evaluate(self) -> None:
        async with self._lock:
            with self.state:
                self.state.busy, self.state.error = True, ""
            try:
                s = self.session
                # a DICOM case's review reads the scene: on this thread; a teaching case's is pure numpy
                result = (
                    teaching.compute_review(s) if s.dicom is not None else await self._run(teaching.compute_review, s)
                )
                teaching.store_evaluation(s, result)
                self.shown = None
                self._show_session()
                png = await self._run(teaching.dvh_png, result)
                with self.state:
                    self._publish_case()
                    self._publish_panel(png)
                    self.state.whatif_factor, self.state.whatif_text = 1.0, ""
                    self.state.whatif_applied = f"{self.state.whatif_mode}:1.00"
                    self.state.busy = False
                self._whatif_request = self._whatif_done = (self.state.whatif_mode, 1.0)
            except Exception as exc:
                self._fail(exc)

    def toggle_segment(self, segment_id: str, visible) -> None:
        if self.session is None:
            return
        display = self.session.nodes.segmentation.GetDisplayNode()
        display.SetSegmentVisibility(segment_id, bool(visible))
        self.state.segments = [
            dict(i, visible=bool(visible)) if i["id"] == segment_id else i for i in self.state.segments
        ]
        self._render()

    def quiz_answer(self, choice: str) -> None:
        if self.session is None or self.session.result is None:
            return
        self.session.quiz.record(choice)
        self._publish_panel()

    def _request_whatif(self, mode: str, factor: float) -> None:
        self._whatif_request = (mode, round(float(factor), 6))
        if self.session is None or self.session.result is None:
            return
        if self._whatif_task is None or self._whatif_task.done():
            self._whatif_task = asynchronous.create_task(self._whatif_loop())

    async def _whatif_loop(self) -> None:
        """Apply the latest requested what-if; requests made meanwhile are coalesced into the next round."""
        while self._whatif_request != self._whatif_done and self.session is not None and self.session.result:
            mode, factor = request = self._whatif_request
            async with self._lock:
                try:
                    s = self.session
                    what = await self._run(teaching.scaled_review, s.result, mode, factor)
                    png = await self._run(teaching.dvh_png, what.result)
                    if self.session is not s:
                        return
                    self.shown = None if what.result is s.result else what.result
                    self._show_whatif_dose(what.dose)
                    with self.state:
                        self._publish_panel(png)
                        self.state.whatif_text = "" if self.shown is None else what.description
                        self.state.whatif_applied = f"{mode}:{factor:.2f}"
                except Exception as exc:
                    self._fail(exc)
                finally:
                    self._whatif_done = request
