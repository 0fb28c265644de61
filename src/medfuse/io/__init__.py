"""Layer 5: files in and out with their geometry: 2-D images (:mod:`~medfuse.io.images`: PNG,
JPEG, TIFF, BMP, 8 or 16 bit) and volumes (:mod:`~medfuse.io.volumes`: NIfTI, DICOM series).
No torch."""
