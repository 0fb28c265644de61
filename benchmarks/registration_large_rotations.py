"""Single CT slices turned by 25 to 60 degrees and registered back to their MRI: how wrong the
results are, and whether a signal that :func:`medfuse.clinical.registration.register` computes
anyway tells the wrong ones from the right ones (issue 32).

    python benchmarks/registration_large_rotations.py [--data ../shared/data/havard] [--seed 0]
        [--draws 1] [--out benchmarks/results/registration_large_rotations.jsonl]

Each Havard CT-MRI test pair (registered already) gives ``--draws`` cases: the CT moved by a known
rigid transform T (a rotation of 25 to 60 degrees either way about the slice's centre, a shift of
up to 16 pixels along each axis; ``resample_onto``: the moved image at p is the CT at T(p)) and
registered to the MRI. The error of a result R is the mean of |T(R(p)) - p| over the pair's object
pixels; as the pairs' own alignment differs from mutual information's optimum by 1 to 3 pixels,
each case is also measured against where the unmoved pair registers (R0): the mean of
|T(R(p)) - R0(p)|. A case is wrong when that exceeds 2 pixels. Each line of the output holds one
case: the transform drawn, both errors, whether ``implausibilities`` refuses it, and the signals
(mutual information before and after, the share of the poorer image's own, the next distinct
start's share, the uncertainty check's landing, the object beyond a cut edge) of the moved and of
the unmoved registration.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from medfuse.clinical.registration import LinearTransform, implausibilities, register, resample_onto
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image

WRONG_PIXELS = 2.0
ANGLES = (25.0, 60.0)
SHIFT = 16.0


def turned(rng: np.random.Generator, centre: np.ndarray) -> LinearTransform:
    angle = math.radians(rng.uniform(*ANGLES) * rng.choice((-1.0, 1.0)))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return LinearTransform("rigid", rotation, rng.uniform(-SHIFT, SHIFT, 2), centre)


def signals(registration) -> dict:
    return {
        "metric_before": registration.metric_before,
        "metric_after": registration.metric_after,
        "shared": registration.shared,
        "rival_share": registration.rivals[0][1] if registration.rivals else None,
        "rival_apart": registration.rivals[0][0] if registration.rivals else None,
        "uncertainty_px": registration.uncertainty[0],
        "uncertainty_degrees": registration.uncertainty[1],
        "unmatched": registration.unmatched,
        "rotation_found": registration.transform.rotation_degrees,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/havard"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/registration_large_rotations.jsonl"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    folder = args.data / "CT-MRI" / "test"
    with open(args.out, "w", encoding="utf-8") as out:
        for mri_path in sorted((folder / "MRI").glob("*.png")):
            mri = grey_unit(load_image(mri_path))
            ct = grey_unit(load_image(folder / "CT" / mri_path.name))
            rows, columns = np.nonzero((mri > 0.08) | (ct > 0.08))
            points = np.stack([columns, rows], axis=1).astype(np.float64)
            centre = (np.array(mri.shape[::-1]) - 1) / 2
            unmoved = register(mri, ct)
            for draw in range(args.draws):
                true = turned(rng, centre)
                started = time.perf_counter()
                found = register(mri, resample_onto(ct, ct, true))
                landed = true.apply(found.transform.apply(points))
                record = {
                    "pair": mri_path.stem,
                    "draw": draw,
                    "degrees": math.degrees(math.atan2(true.matrix[1, 0], true.matrix[0, 0])),
                    "shift": true.translation.tolist(),
                    "error_px": float(np.linalg.norm(landed - points, axis=1).mean()),
                    "error_vs_unmoved_px": float(
                        np.linalg.norm(landed - unmoved.transform.apply(points), axis=1).mean()
                    ),
                    "refused": implausibilities(found, mri),
                    "seconds": time.perf_counter() - started,
                    **signals(found),
                    "unmoved": {**signals(unmoved), "refused": implausibilities(unmoved, mri)},
                }
                record["wrong"] = record["error_vs_unmoved_px"] > WRONG_PIXELS
                out.write(json.dumps(record) + "\n")
                out.flush()
                print(
                    f"{record['pair']}: {record['degrees']:+.1f} deg, error {record['error_px']:.2f} px "
                    f"({record['error_vs_unmoved_px']:.2f} against the unmoved pair's registration), "
                    f"{'refused' if record['refused'] else 'accepted'}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
