"""Other tools' margins, as the tests and the margin benchmark compare ours against them."""

import numpy as np


def slicer_margin_effect(arr, spacing, margin_mm):
    """Slicer's Margin effect on a bool [k, j, i] array with ``spacing`` (i, j, k mm): binarise (inside 1),
    then grow by ``margin_mm`` with vtkITKImageMargin, which measures between voxel centres."""
    import slicer
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkImagingCore import vtkImageThreshold

    img = slicer.vtkOrientedImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.SetSpacing(*spacing)
    voxels = np.ascontiguousarray(arr, bool).view(np.uint8).ravel()  # no copy before VTK's own
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels, deep=True))
    th = vtkImageThreshold()
    th.SetInputData(img)
    th.ThresholdByLower(0)
    th.SetInValue(0)
    th.SetOutValue(1)
    th.SetOutputScalarTypeToUnsignedChar()
    margin = slicer.vtkITKImageMargin()
    margin.SetInputConnection(th.GetOutputPort())
    margin.CalculateMarginInMMOn()
    margin.SetOuterMarginMM(margin_mm)
    margin.Update()
    return numpy_support.vtk_to_numpy(margin.GetOutput().GetPointData().GetScalars()).reshape(arr.shape) > 0
