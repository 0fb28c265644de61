"""Layer 3: the method: the network (:mod:`~medfuse.dran.network`, nn.Modules, no I/O), nuclear
norms (:mod:`~medfuse.dran.nuclear`), Laplacian pyramids (:mod:`~medfuse.dran.pyramid`),
fusion rules (:mod:`~medfuse.dran.rules`, pure functions of (N, C, H, W) features), named
architectures and shipped weights (:mod:`~medfuse.dran.models`, files in ``weights/``).

The two defaults live here, importable without torch (the command line's help shows them).
"""

DEFAULT_RULE = "pyramid-energy"
"""The fusion rule used unless told otherwise: ``sfnn-pyramid``'s blend with weights from the sources'
local brightness, which needs no network (:data:`medfuse.dran.rules.PYRAMID_ENERGY`). No DRAN fusion
beat it on the lesions of both sources and the seven metrics together (BENCHMARKS.md, issue 31)."""

DEFAULT_MODEL = "dran-fusion-havard"
"""The shipped model used unless told otherwise (``weights/MODEL_CARD.md``): the stage-1 autoencoder
``dran-havard`` with its trained fusion stage, so that every rule, ``trained-pyramid`` too, runs on it."""

ARCHITECTURE_NAMES = ("dran", "dran-edge")
"""The named architectures, in the order of :data:`medfuse.dran.models.ARCHITECTURES`: DRAN, and
the extended paper's edge-enhanced DRAN."""
"""The shipped model used unless told otherwise (``weights/MODEL_CARD.md``)."""
