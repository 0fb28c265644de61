"""medfuse: multimodal medical image fusion with DRAN."""
