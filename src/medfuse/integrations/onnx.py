"""medfuse as an ONNX file: the network and a rule with a weight map, run by onnxruntime.

:func:`export_onnx` records :class:`FusionGraph` (the encoder, the rule's weights and its blend,
the same functions :func:`medfuse.fuse` runs) with torch's dynamo exporter (``torch.export``, then
onnxscript) into one ONNX file. The nuclear norms are taken by the polar iteration there
(:func:`medfuse.dran.nuclear.polar_iteration_everywhere`): matrix products only, which ONNX
expresses, where the CPU's eigenvalue method is a LAPACK call outside the graph. A feature rule
is not exported: the graph's second output is A's weight map, which a feature rule has not.

The graph has a fixed image size: the rule's Laplacian pyramid takes as many levels as the size
allows and the tracer unrolls that loop, so a file is exact for the size it was exported for
and :class:`OnnxFusion` refuses any other. The file's metadata (``metadata_props``) holds the
medfuse version, the rule, the weights' name and SHA-256 and that size.

:class:`OnnxFusion` runs such a file on numpy arrays with onnxruntime on the CPU, grey or colour
and any pixel type, as :func:`medfuse.fuse` takes them (:func:`medfuse.image.composition.grey_pair`
before, :func:`medfuse.image.composition.compose` after). The libraries come from the ``onnx``
extra (``pip install 'medfuse[onnx]'``): onnx, onnxscript and torch to export, onnxruntime to run.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from medfuse import __version__
from medfuse._shared.checks import check_exists, check_new_output
from medfuse._shared.errors import InputError, one_line
from medfuse._shared.files import write_atomically
from medfuse._shared.optional import import_optional
from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE, network
from medfuse.dran.models import list_models, load_model, weights_digest, weights_path
from medfuse.dran.nuclear import polar_iteration_everywhere
from medfuse.dran.rules import ImageFusion, SourceFusion, SourceWeighting, TrainedFusion, get_rule
from medfuse.fusion.engine import check_weight_map, fuse_images
from medfuse.fusion.memory import check_memory
from medfuse.image.composition import compose, grey_pair
from medfuse.integrations import ONNX_SIZE

if TYPE_CHECKING:
    import onnx
    import onnxruntime

OPSET = 18
"""The ONNX operator set of the exported graph (the dynamo exporter's own)."""
INPUTS = ("image_a", "image_b")
OUTPUTS = ("fused", "weight_a")
METADATA_KEYS = ("medfuse_version", "rule", "weights", "weights_sha256", "height", "width")


class FusionGraph(nn.Module):
    """What an ONNX export holds: ``image_a``, ``image_b`` (N, 1, H, W) in [0, 1] -> the fused
    image (N, 1, H, W) and A's weight map (N, 1, H, W), by
    :func:`medfuse.fusion.engine.fuse_images` with ``rule``, the nuclear norms by the polar
    iteration on every device."""

    def __init__(self, model: network.DRAN, rule: SourceWeighting | SourceFusion | TrainedFusion | ImageFusion) -> None:
        super().__init__()
        self.model = model
        self.rule = rule

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with polar_iteration_everywhere():
            fused, w_a = fuse_images(self.model, image_a, image_b, self.rule)
        assert w_a is not None  # each of these kinds of rule has a weight map
        return fused, w_a


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as two ints; :class:`InputError` under 2 x 2, NotEnoughMemoryError past the free memory."""
    height, width = (int(side) for side in size)
    if min(height, width) < 2:
        raise InputError(f"export size {height} x {width}: both sides must be at least 2 pixels")
    check_memory(height, width, 1, "cpu")  # a size this machine could not fuse, it would export untested
    return height, width


def _traced(graph: FusionGraph, height: int, width: int) -> onnx.ModelProto:
    """The ONNX model (an ``onnx.ModelProto``) of ``graph`` at ``height`` x ``width``, with the
    exporter's progress lines and its notes about libraries it does not need kept quiet."""
    examples = tuple(torch.full((1, 1, height, width), 0.5) for _ in INPUTS)  # one tensor passed twice: one input
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning):  # torch.export's notes about its own internals
                warnings.simplefilter("ignore", category)
            program = torch.onnx.export(
                graph,
                examples,
                dynamo=True,
                opset_version=OPSET,
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    assert program is not None  # what the dynamo exporter returns
    return program.model_proto


def export_onnx(
    path: str | os.PathLike,
    rule: str = DEFAULT_RULE,
    weights: str | os.PathLike = DEFAULT_MODEL,
    size: tuple[int, int] = ONNX_SIZE,
) -> Path:
    """Write the network with ``rule`` (one with a weight map:
    :func:`~medfuse.fusion.engine.check_weight_map`) and the
    ``weights`` (a shipped name or a safetensors path) as one ONNX file at ``path``, for grey
    images of ``size`` (H, W): inputs ``image_a``, ``image_b`` (1, 1, H, W) float32 in [0, 1],
    outputs ``fused`` and ``weight_a`` (1, 1, H, W). Written atomically; returns ``path``.

    Raises :class:`InputError` for a feature rule, an unknown rule or a size under 2 x 2,
    :class:`~medfuse._shared.errors.NotEnoughMemoryError` for a size whose fusion would not fit in
    the free memory, :class:`~medfuse._shared.errors.MissingInputError` for missing weights,
    :class:`~medfuse._shared.errors.MissingDependencyError` without onnx or onnxscript, and
    :class:`~medfuse._shared.errors.OutputError` for a path that cannot be written; all before the export.
    """
    onnx = import_optional("onnx", "onnx")
    import_optional("onnxscript", "onnx")
    check_weight_map(rule)
    rule_function = get_rule(rule)
    assert isinstance(rule_function, (SourceWeighting, SourceFusion, TrainedFusion, ImageFusion))  # checked above
    height, width = _check_size(size)
    path = check_new_output(path, [weights_path(weights)])
    graph = FusionGraph(load_model(weights, "cpu"), rule_function).eval()
    proto = _traced(graph, height, width)
    weights_name = str(weights) if str(weights) in list_models() else Path(weights).name
    onnx.helper.set_model_props(
        proto,
        {
            "medfuse_version": __version__,
            "rule": rule,
            "weights": weights_name,
            "weights_sha256": weights_digest(weights),
            "height": str(height),
            "width": str(width),
        },
    )
    proto.doc_string = (
        f"medfuse {__version__}: DRAN ({weights_name}) with rule {rule}; inputs image_a, image_b "
        f"(1, 1, {height}, {width}) grey in [0, 1]; outputs fused, weight_a (A's weight map)"
    )
    return write_atomically(path, lambda temporary: onnx.save_model(proto, str(temporary)))


def _metadata_size(path: Path, metadata: dict[str, str]) -> tuple[int, int]:
    """The image size (H, W) a file's metadata records; :class:`InputError` for one that is not two
    whole numbers of at least 2 (digits only, as :func:`export_onnx` writes them)."""
    sides = []
    for key in ("height", "width"):
        text = metadata[key]
        if not (text.isascii() and text.isdecimal()) or int(text) < 2:
            raise InputError(
                f"{path}: its metadata's {key} is {text[:40]!r}, not a whole number of pixels of at "
                "least 2; not a file medfuse export-onnx wrote, or one edited since"
            )
        sides.append(int(text))
    return sides[0], sides[1]


def _check_graph(path: Path, session: onnxruntime.InferenceSession, size: tuple[int, int]) -> None:
    """:class:`InputError` unless the graph takes ``image_a`` and ``image_b`` and gives ``fused``
    and ``weight_a``, each float32 of shape (1, 1, H, W) for the metadata's ``size``."""
    inputs = {argument.name: argument for argument in session.get_inputs()}
    outputs = {argument.name: argument for argument in session.get_outputs()}
    if set(inputs) != set(INPUTS) or not set(OUTPUTS) <= set(outputs):
        raise InputError(
            f"{path}: its graph takes {', '.join(inputs) or 'nothing'} and gives "
            f"{', '.join(outputs) or 'nothing'}; a medfuse export takes {', '.join(INPUTS)} and gives "
            f"{', '.join(OUTPUTS)}"
        )
    expected = [1, 1, *size]
    for argument in (*(inputs[name] for name in INPUTS), *(outputs[name] for name in OUTPUTS)):
        if argument.type != "tensor(float)" or list(argument.shape) != expected:
            raise InputError(
                f"{path}: its graph's {argument.name} is {argument.type} of shape "
                f"{list(argument.shape)}, where its metadata's size asks for tensor(float) of "
                f"shape {expected}"
            )


class OnnxFusion:
    """An ONNX file of :func:`export_onnx`, run by onnxruntime on the CPU with ``threads`` threads
    (None: onnxruntime's default, one per core). ``metadata`` is the file's metadata; ``size``
    (H, W) the only image size it fuses. A file that onnxruntime cannot load, whose metadata lacks
    a key or records a size that is not two whole numbers, or whose graph does not take
    ``image_a``, ``image_b`` and give ``fused``, ``weight_a`` (float32, 1 x 1 x H x W) is an
    :class:`InputError` in one line."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        onnxruntime = import_optional("onnxruntime", "onnx")
        (self.path,) = check_exists(path)
        options = onnxruntime.SessionOptions()
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
                raise InputError(f"threads must be a whole number of at least 1, got {threads!r}")
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own error types for what it cannot load
            raise InputError(f"{self.path}: not an ONNX model onnxruntime can run ({one_line(error)})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if not set(METADATA_KEYS) <= set(self.metadata):
            raise InputError(
                f"{self.path}: not written by medfuse export-onnx (its metadata lacks "
                f"{', '.join(sorted(set(METADATA_KEYS) - set(self.metadata)))})"
            )
        self.size = _metadata_size(self.path, self.metadata)
        _check_graph(self.path, self.session, self.size)

    def fuse_with_weights(self, image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fused image (as :func:`medfuse.fuse` gives it: grey or RGB, the inputs' pixel type)
        and A's weight map, float64 (H, W) in [0, 1]; :class:`InputError` for images of another
        size than the file's."""
        grey_a, grey_b = grey_pair(image_a, image_b)
        if grey_a.shape != self.size:
            raise InputError(
                f"{self.path} fuses {self.size[0]} x {self.size[1]} images only, got "
                f"{grey_a.shape[0]} x {grey_a.shape[1]}; export one for that size "
                f"(medfuse export-onnx OUT.onnx --size {grey_a.shape[0]} {grey_a.shape[1]})"
            )
        feeds = {name: grey[None, None].astype(np.float32) for name, grey in zip(INPUTS, (grey_a, grey_b))}
        try:
            fused, w_a = self.session.run(list(OUTPUTS), feeds)
        except MemoryError:
            raise
        except Exception as error:  # onnxruntime's own error types, for a graph that fails as it runs
            raise InputError(f"{self.path}: onnxruntime could not run it ({one_line(error)})") from None
        for name, output in zip(OUTPUTS, (fused, w_a)):
            if output.shape != (1, 1, *self.size):
                raise InputError(
                    f"{self.path}: its graph gave {name} of shape {list(output.shape)}, not "
                    f"{[1, 1, *self.size]}; not a file medfuse export-onnx wrote"
                )
        return compose(fused[0, 0], image_a, image_b), w_a[0, 0].astype(np.float64)

    def fuse(self, image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        """The fused image of ``image_a`` and ``image_b``, as :func:`medfuse.fuse` takes and gives them."""
        return self.fuse_with_weights(image_a, image_b)[0]
