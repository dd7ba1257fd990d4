"""Rebuild filmstrip/data/assets/digits.npz from scikit-learn's bundled handwritten digits.

filmstrip ships the 1,797 8x8 digit images (UCI "Optical Recognition of Handwritten Digits",
as packaged by scikit-learn in sklearn/datasets/data/digits.csv.gz) so that the `digits`
dataset needs neither scikit-learn nor a download. This script is how the file was made:

    pip download --no-deps -d /tmp/skl scikit-learn
    python scripts/extract_digits.py /tmp/skl/scikit_learn-*.whl

It also accepts an installed scikit-learn package directory.
"""

import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "sklearn/datasets/data/digits.csv.gz"
OUT = Path(__file__).resolve().parents[1] / "filmstrip" / "data" / "assets" / "digits.npz"


def read_csv_gz(source: Path) -> bytes:
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(MEMBER)
    return (source / "datasets" / "data" / "digits.csv.gz").read_bytes()


def main(source: str) -> None:
    raw = gzip.decompress(read_csv_gz(Path(source)))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)  # (1797, 65): 64 pixels + label
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)  # intensities 0..16
    labels = table[:, 64].astype(np.uint8)
    assert images.max() <= 16 and set(labels.tolist()) == set(range(10))
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f"wrote {OUT} ({len(labels)} digits, {OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
