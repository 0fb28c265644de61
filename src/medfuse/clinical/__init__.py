"""Layer 7: the clinical job: grids and resampling (:mod:`~medfuse.clinical.grids`, no torch), CT
windows and percentiles (:mod:`~medfuse.clinical.intensity`), registration
(:mod:`~medfuse.clinical.registration`; SimpleITK stays inside it), the whole job from two
files to one (:func:`medfuse.clinical.pipeline.fuse_files`) and the batch row engine
(:mod:`~medfuse.clinical.batch`)."""

FOLDER_SUFFIX = ".png"
"""The format of the images that fusing two folders writes, unless told otherwise."""
