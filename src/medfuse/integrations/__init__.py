"""Layer 10 (an edge): medfuse inside other tools. One module per tool, each imported only when
asked for, each calling the same library functions a Python user calls; the tool itself
(MONAI, onnxruntime, pybids) comes from an optional extra and is imported inside the module."""
