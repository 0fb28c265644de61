"""Layer 9 (an edge): running library functions on a cluster. :mod:`~medfuse.scaleout.cluster`
runs the batch rows of :mod:`medfuse.clinical.batch` as Dask tasks, each calling the library's
row function; it knows nothing of the command line."""
