"""``import medfuse.metrics``: the name under which the fusion metrics are used,
:mod:`medfuse.evaluation.metrics` itself (their one home), not a copy of it.

``from medfuse import metrics`` gives that module through the package's lazy names; this file lets
``import medfuse.metrics`` give it too: importing it puts that module in its own place, so that
``medfuse.metrics is medfuse.evaluation.metrics`` whichever form came first. Its submodules keep
their own names (``medfuse.evaluation.metrics.fidelity``).
"""

from __future__ import annotations

import sys

from medfuse.evaluation import metrics

sys.modules[__name__] = metrics
