"""Rigid MR-to-CT registration (SimpleITK) and its MRML transform node (see ``rigid`` for the convention)."""
