"""MRML adapters: the only place where the library touches Slicer's scene.

They use MRML and VTK classes only (``slicer.vtkMRML*``, ``vtk.util.numpy_support``), never Qt or
``slicer.util``, so the same functions run in desktop Slicer (``slicer.mrmlScene``) and on a standalone
scene from slicer-core (``scene.new_scene()``). Every function takes the scene or node explicitly.
"""
