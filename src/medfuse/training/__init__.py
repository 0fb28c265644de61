"""Layer 8: stage 1 of DRAN, the autoencoder trained on single images of every modality: the
settings (:mod:`~medfuse.training.config`, no torch), images and crops
(:mod:`~medfuse.training.data`), losses (:mod:`~medfuse.training.losses`), the one loop
(:mod:`~medfuse.training.loop`) and its distributed set-up (:mod:`~medfuse.training.distributed`)."""
