"""Layer 10 (an edge): medfuse inside other tools. One module per tool, each imported only when
asked for, each calling the same library functions a Python user calls; the tool itself
(MONAI, onnxruntime, pybids) comes from an optional extra and is imported inside the module."""

ONNX_SIZE = (256, 256)
"""The image size (H, W) that ``medfuse export-onnx`` exports for unless told: that of the Havard
pairs and the bundled samples (here, importable without torch, for the command line's help)."""
