"""Layer 2: pixels and colour (numpy only): BT.601 YCbCr (:mod:`~medfuse.image.colour`),
integer scales <-> [0, 1] (:mod:`~medfuse.image.scales`), a grey fusion composed back into
colour and the input's pixel type (:mod:`~medfuse.image.composition`), and a volume with its
world geometry (:mod:`~medfuse.image.grid`)."""
