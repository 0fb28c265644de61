"""Layer 3: the method: the network (:mod:`~medfuse.dran.network`, nn.Modules, no I/O), nuclear
norms (:mod:`~medfuse.dran.nuclear`), Laplacian pyramids (:mod:`~medfuse.dran.pyramid`),
fusion rules (:mod:`~medfuse.dran.rules`, pure functions of (N, C, H, W) features), named
architectures and shipped weights (:mod:`~medfuse.dran.models`, files in ``weights/``).

The two defaults live here, importable without torch (the command line's help shows them).
"""

DEFAULT_RULE = "sfnn-pyramid"
"""The fusion rule used unless told otherwise (see :func:`medfuse.dran.rules.pyramid_blend`)."""

DEFAULT_MODEL = "dran-havard"
"""The shipped model used unless told otherwise (``weights/MODEL_CARD.md``)."""

ARCHITECTURE_NAMES = ("dran", "dran-edge")
"""The named architectures, in the order of :data:`medfuse.dran.models.ARCHITECTURES`: DRAN, and
the extended paper's edge-enhanced DRAN."""
"""The shipped model used unless told otherwise (``weights/MODEL_CARD.md``)."""
