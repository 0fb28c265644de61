"""``medfuse export-onnx``: :func:`medfuse.integrations.onnx.export_onnx` on the command line."""

from __future__ import annotations

import argparse

from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE
from medfuse.integrations import ONNX_SIZE

DESCRIPTION = (
    "Write the DRAN network with a fusion rule as one ONNX file, to run with onnxruntime (or any ONNX runtime) "
    "without medfuse's torch code: inputs image_a and image_b, grey (1, 1, H, W) float32 in [0, 1]; outputs "
    "fused and weight_a (A's weight map), (1, 1, H, W). The nuclear norms are computed by the polar iteration "
    "(matrix products only). The graph is for one image size, --size, which its metadata records with the "
    "medfuse version, the rule and the weights' name and SHA-256; other sizes are refused. Only rules with a "
    "weight map are exported (not the feature rules). Needs pip install 'medfuse[onnx]'. In Python: "
    "medfuse.integrations.onnx.export_onnx(OUT, rule=..., weights=..., size=(H, W)); "
    "medfuse.integrations.onnx.OnnxFusion(OUT).fuse(a, b) runs the file on images as medfuse.fuse takes them."
)


def add_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    parser = commands.add_parser("export-onnx", help=summary, description=DESCRIPTION)
    parser.add_argument("out", help="the ONNX file to write (written whole or not at all)")
    parser.add_argument(
        "--rule",
        default=DEFAULT_RULE,
        help=f"a fusion rule with a weight map (default {DEFAULT_RULE}; a feature rule is refused "
        "with the list of those that can be exported)",
    )
    parser.add_argument(
        "--weights", default=DEFAULT_MODEL, help=f"shipped model name or safetensors path (default {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=list(ONNX_SIZE),
        help=f"the image size the graph fuses (default {ONNX_SIZE[0]} {ONNX_SIZE[1]}, the size of "
        "the bundled and the Havard pairs)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from medfuse.integrations.onnx import export_onnx

    path = export_onnx(args.out, rule=args.rule, weights=args.weights, size=tuple(args.size))
    print(f"wrote {path}: rule {args.rule}, weights {args.weights}, {args.size[0]} x {args.size[1]} images")
