"""Layer 9 (an edge): running library functions on a cluster. :mod:`~medfuse.scaleout.cluster`
maps one function over many items with Dask; it knows nothing of the command line."""
