"""A standalone MRML scene with the logics segmentations need, for use outside desktop Slicer."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Dict


@dataclass
class StandaloneScene:
    """A ``vtkMRMLScene`` plus the module logics that must live as long as it does."""

    scene: object
    app_logic: object
    logics: Dict[str, object] = field(default_factory=dict)
    _keep: list = field(default_factory=list, repr=False)

    def enable_mrb_reading(self) -> None:
        """``scene.ReadFromMRB`` needs the remote/data IO logics with a cache folder."""
        import slicer

        if "RemoteIO" in self.logics:
            return
        rio = slicer.vtkMRMLRemoteIOLogic()
        rio.SetMRMLScene(self.scene)
        rio.SetMRMLApplicationLogic(self.app_logic)
        cache = tempfile.TemporaryDirectory(prefix="sibspine-cache-")
        rio.GetCacheManager().SetRemoteCacheDirectory(cache.name)
        dio = slicer.vtkDataIOManagerLogic()
        dio.SetMRMLScene(self.scene)
        dio.SetMRMLApplicationLogic(self.app_logic)
        dio.SetAndObserveDataIOManager(rio.GetDataIOManager())
        rio.AddDataIOToScene()
        self.logics["RemoteIO"] = rio
        self.logics["DataIO"] = dio
        self._keep.append(cache)


def new_scene() -> StandaloneScene:
    """Create an MRML scene set up as Slicer sets up its own: colour nodes, and the Volumes,
    Segmentations (registers the representation converters) and Subject Hierarchy logics."""
    import slicer

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    colors = app_logic.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    ctx = StandaloneScene(scene, app_logic)
    for name, logic in (
        ("Colors", colors),
        ("Volumes", slicer.vtkSlicerVolumesLogic()),
        ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic()),
        ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic()),
    ):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(name, logic)
        ctx.logics[name] = logic
    return ctx
