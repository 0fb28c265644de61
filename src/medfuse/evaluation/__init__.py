"""Layer 6: fusion metrics (:mod:`~medfuse.evaluation.metrics`, one function each, never
torch), scoring folders of fused images (:mod:`~medfuse.evaluation.scoring`), and the benchmark
with its tables and plots (:mod:`~medfuse.evaluation.benchmark`)."""

RANKED_METRICS = ("psnr", "ssim", "fmi", "fsim", "qabf", "vif", "mi")
"""The metrics a benchmark ranks methods by (the seven of the DRAN paper's tables)."""

MONTAGE_PAIRS = 3
"""Pairs a benchmark's montage shows, unless told otherwise."""
