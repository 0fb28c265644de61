"""Layer 4: model + rule -> fused array (:mod:`~medfuse.fusion.engine`), memory planning and
batching (:mod:`~medfuse.fusion.memory`), slice-batched volumes (:mod:`~medfuse.fusion.volumes`),
classical baselines (:mod:`~medfuse.fusion.baselines`, no network) and every method by name
(:mod:`~medfuse.fusion.methods`). Arrays and tensors in and out; no files."""
