"""Per-case features of single cross-modal 2-D registrations on the Havard TRAIN pairs, for tuning
the refusal thresholds of ``medfuse.clinical.registration`` (report on test pairs with
``benchmarks/registration_accuracy.py``).

    python benchmarks/registration_cases.py --data ../shared/data/havard --sets CT-MRI --pairs 14 \\
        --seed 11 --degrees 90 --shift 64 > cases.jsonl

Each case moves the pair's CT, PET or SPECT slice by a random rigid transform (as
``registration_accuracy.py`` does), registers it back to the MRI and prints one JSON line: the
mean residual against the known transform (``truth``) and against where the unmoved pair
registers (``consistency``: the search's own error, without the 1 to 3 pixels by which the
pairs' alignment differs from mutual information's), the reported uncertainty, the next distinct
start's share of the mutual information (``margin``), the rotation found, whether the result
was refused, the share of an image's object that it puts outside the other's field of view
(``unmatched``), the same share and refusal for the unmoved pair (a refusal of a real pair as it
came is a false one), and the three transforms (true, found, unmoved; matrix and translation about
the grid's centre), so that other measures can be computed from the file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from registration_accuracy import image_points, random_rigid, residuals

from medfuse.clinical.registration import implausibilities, register, resample_onto
from medfuse.image.scales import grey_unit
from medfuse.io.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the Havard data folder (SET/train/MODALITY/*.png)")
    parser.add_argument("--sets", default="CT-MRI,PET-MRI,SPECT-MRI", help="pair sets, comma-separated")
    parser.add_argument("--pairs", type=int, default=7, help="train pairs drawn per set (default 7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--degrees", type=float, default=90.0, help="largest rotation drawn (default 90)")
    parser.add_argument("--shift", type=float, default=64.0, help="largest shift drawn, pixels (default 64)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for pair_set in args.sets.split(","):
        modality = pair_set.split("-")[0]
        paths = sorted((args.data / pair_set / "train" / "MRI").glob("*.png"))
        chosen = np.random.default_rng(args.seed + 1).choice(len(paths), args.pairs, replace=False)
        for mri_path in (paths[index] for index in chosen):
            mri = grey_unit(load_image(mri_path))
            other = grey_unit(load_image(args.data / pair_set / "train" / modality / mri_path.name))
            points = image_points((mri > 0.08) | (other > 0.08))
            true = random_rigid(rng, (np.array(mri.shape[::-1]) - 1) / 2, args.degrees, args.shift)
            start = time.time()
            found = register(mri, resample_onto(other, other, true))
            unmoved_registration = register(mri, other)
            unmoved = unmoved_registration.transform
            consistency = np.linalg.norm(true.apply(found.transform.apply(points)) - unmoved.apply(points), axis=1)
            print(
                json.dumps(
                    {
                        "set": pair_set,
                        "name": mri_path.name,
                        "truth": float(residuals(true, found.transform, points).mean()),
                        "consistency": float(consistency.mean()),
                        "uncertainty_px": found.uncertainty[0],
                        "margin": found.rivals[0][1] if found.rivals else None,
                        "rotation_found": found.transform.rotation_degrees,
                        "refused": bool(implausibilities(found, mri)),
                        "unmatched": found.unmatched,
                        "unmoved_unmatched": unmoved_registration.unmatched,
                        "unmoved_refused": bool(implausibilities(unmoved_registration, mri)),
                        "true": [true.matrix.tolist(), true.translation.tolist()],
                        "found": [found.transform.matrix.tolist(), found.transform.translation.tolist()],
                        "unmoved": [unmoved.matrix.tolist(), unmoved.translation.tolist()],
                        "seconds": round(time.time() - start, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
