"""What the Slicer panel keeps between actions, tied to the nodes it was made from.

The panel loads a DICOM case, evaluates, then normalises or exports a report from the last review. Those
later actions must never act on a review of other nodes: after a scene close, a new segmentation or dose,
or a node deleted, the stored review is forgotten, not reused. The panel (``SIBSpineSBRT.py``) only asks
this object; the rule is tested here with real MRML nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple


def _ids(nodes) -> Tuple[Optional[str], ...]:
    return tuple(None if n is None else n.GetID() for n in nodes)


def _in_scene(scene, nodes) -> bool:
    return all(n is None or (n.GetScene() is scene and scene.GetNodeByID(n.GetID()) is n) for n in nodes)


@dataclass
class ReviewSession:
    """The DICOM case loaded and the last review, each with the nodes (segmentation, dose) they belong to."""

    dicom_case: Any = None
    last_result: Any = None
    _result_nodes: Tuple[Any, ...] = field(default_factory=tuple)
    _result_ids: Tuple[Optional[str], ...] = field(default_factory=tuple)

    def remember(self, result, segmentation, dose) -> None:
        self.last_result = result
        self._result_nodes = (segmentation, dose)
        self._result_ids = _ids(self._result_nodes)

    def result_for(self, scene, segmentation, dose):
        """The last review if it was made from these very nodes and they are still in ``scene``; else None."""
        if self.last_result is None or scene is None:
            return None
        nodes = (segmentation, dose)
        if nodes != self._result_nodes or _ids(nodes) != self._result_ids or not _in_scene(scene, nodes):
            return None
        return self.last_result

    def case_for(self, scene, ct):
        """The loaded DICOM case if ``ct`` is its CT node, still in ``scene``; else None."""
        case = self.dicom_case
        if case is None or ct is None or getattr(case, "ct", None) is not ct or not _in_scene(scene, (ct,)):
            return None
        return case

    def load(self, case) -> None:
        """A new case: the old review goes with the old case."""
        self.forget()
        self.dicom_case = case

    def forget(self) -> None:
        """Scene closed: nothing of it is kept."""
        self.dicom_case = None
        self.last_result = None
        self._result_nodes = ()
        self._result_ids = ()
