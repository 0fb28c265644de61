"""What several commands share: the options defined once, and progress bars. Light imports
only (argparse, the library's names and defaults), so that ``--help`` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from medfuse._shared.errors import InputError
from medfuse.clinical.intensity import CT_WINDOWS, DEFAULT_PERCENTILES, CtWindow
from medfuse.dran import DEFAULT_MODEL, DEFAULT_RULE
from medfuse.fusion.memory import CPU_BATCH_SIZE, MAX_CUDA_BATCH_SIZE, MEMORY_SHARE

if TYPE_CHECKING:
    from tqdm import tqdm

    from medfuse.clinical.pipeline import VolumeOptions

RULE_HELP = (
    f"fusion rule (default {DEFAULT_RULE}: both sources' detail kept whole at lesion scales, their "
    "brightness blended by their local brightness, no network; trained-pyramid: the trained DRAN "
    "fusion stage; sfnn-pyramid: the network's weights; sfnn-map-e4 leans to one source; the list is below)"
)

RESAMPLE_HELP = (
    "resample the other volume onto the grid of A (or B) by trilinear interpolation; the "
    "output takes that grid. This is NOT registration: it only helps volumes that already "
    "lie in one world space (e.g. one scanner session), it cannot correct movement"
)


def defaulted_options(parser: argparse.ArgumentParser, defaults: dict[str, object]) -> Callable[[str, type, str], None]:
    """``option(name, kind, text)``: adds ``--NAME`` (underscores as hyphens) of type ``kind``
    with its default from ``defaults`` (a config dataclass's), said at the end of its help."""

    def option(name: str, kind: type, text: str) -> None:
        parser.add_argument(
            "--" + name.replace("_", "-"), type=kind, default=defaults[name], help=f"{text} (default {defaults[name]})"
        )

    return option


def rules_epilog() -> str:
    """The registered rules, for a command's epilog."""
    from medfuse.dran.rules import list_rules

    return f"rules: {', '.join(list_rules())}"


def add_model_arguments(parser: argparse.ArgumentParser, rule: bool = True, what: str = "") -> None:
    """--rule (unless ``rule`` is False), --weights and --device; ``what`` says what they serve
    (e.g. "for the DRAN methods")."""
    if rule:
        parser.add_argument("--rule", default=DEFAULT_RULE, help=RULE_HELP)
    parser.add_argument(
        "--weights",
        default=DEFAULT_MODEL,
        help=f"shipped model name or safetensors path{what} (default {DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default="cpu", help=f"torch device{what}, e.g. cpu or cuda (default cpu)")


def add_volume_arguments(parser: argparse.ArgumentParser, window: bool = True) -> None:
    """The volume options; ``window=False`` leaves out --window/--level/--width (batch takes
    the window from its manifest)."""
    group = parser.add_argument_group("volumes (NIfTI .nii/.nii.gz, a DICOM file or a folder of one DICOM series)")
    if window:
        windows = ", ".join(f"{name} L{level:g} W{width:g}" for name, (level, width) in CT_WINDOWS.items())
        group.add_argument(
            "--window",
            choices=sorted(CT_WINDOWS),
            help=f"CT window by name for the CT input (see --window-on): {windows} (HU)",
        )
        group.add_argument("--level", type=float, help="CT window level in HU (with --width)")
        group.add_argument("--width", type=float, help="CT window width in HU (with --level)")
    group.add_argument(
        "--window-on",
        choices=("a", "b"),
        default=None,
        help="which input is the CT that the window applies to (default b)",
    )
    group.add_argument(
        "--force-window",
        action="store_true",
        help="apply the CT window even to a volume that does not look like a CT in Hounsfield "
        "units (a DICOM modality other than CT, or no value as low as air)",
    )
    group.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="inputs without a window (MRI, PET, SPECT) are clipped at these percentiles "
        f"and scaled to [0, 1] (default {DEFAULT_PERCENTILES[0]:g} {DEFAULT_PERCENTILES[1]:g})",
    )
    group.add_argument("--resample-to", choices=("A", "B"), default=None, help=RESAMPLE_HELP)
    group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="slices (or, for folders of 2-D images, pairs of one size) per network batch "
        f"(default {CPU_BATCH_SIZE} on the CPU, where larger batches measured slower; on CUDA "
        f"as many as fit in {MEMORY_SHARE * 100:.0f}%% of the free GPU memory, at most "
        f"{MAX_CUDA_BATCH_SIZE})",
    )


VOLUME_OPTIONS = ("window", "level", "width", "window_on", "percentiles", "resample_to", "force_window")


def given_volume_options(args: argparse.Namespace) -> list[str]:
    """The volume options set on the command line (to refuse them for 2-D images)."""
    return ["--" + name.replace("_", "-") for name in VOLUME_OPTIONS if getattr(args, name, None) not in (None, False)]


def volume_options(args: argparse.Namespace) -> VolumeOptions:
    """The :class:`~medfuse.clinical.pipeline.VolumeOptions` the arguments ask for."""
    from medfuse.clinical.pipeline import VolumeOptions

    window = None
    level, width = getattr(args, "level", None), getattr(args, "width", None)
    if getattr(args, "window", None) is not None:
        if level is not None or width is not None:
            raise InputError("give --window or --level/--width, not both")
        window = CtWindow.named(args.window)
    elif level is not None or width is not None:
        if level is None or width is None:
            raise InputError("an explicit CT window needs both --level and --width (HU)")
        window = CtWindow(level, width)
    percentiles = DEFAULT_PERCENTILES if args.percentiles is None else tuple(args.percentiles)
    return VolumeOptions(window, args.window_on or "b", percentiles, args.resample_to, args.force_window)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: not with --quiet, and only on a terminal (a log file or a
    pipe would fill with carriage-return lines)."""
    import sys

    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def progress_bar(
    description: str, enabled: bool = True
) -> tuple[Callable[[int, int, str], object], Callable[[], None]]:
    """A progress callback for the library (``progress(done, total, unit)``) that draws a tqdm
    bar once work begins (if ``enabled``, see :func:`show_progress`), and the function that closes it."""
    bars: list[tqdm] = []

    def progress(done: int, total: int, unit: str) -> None:
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(total=total, desc=description, unit=unit, delay=0.5, disable=not enabled))
        bars[0].update(done)

    def close() -> None:
        if bars:
            bars[0].close()

    return progress, close
