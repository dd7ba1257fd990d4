"""Copy a trained model directory into filmstrip/weights/ in float16, with notes in its meta.

    python scripts/ship_model.py runs/control/camera_02/model filmstrip/weights/t2v_control \
        --note stages="..." --note data="..."

Float16 halves the repository's share of the weights; every shipped model's numbers in
docs/RESULTS.md are measured on the float16 copy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from filmstrip.checkpoint import load_model, read_config, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--note", action="append", default=[], metavar="KEY=TEXT", help="Added to the meta.")
    args = parser.parse_args()
    kind = json.loads((args.source / "config.json").read_text())["kind"]
    info = read_config(args.source, kind)
    config, state, meta = load_model(args.source, kind)
    notes = dict(n.split("=", 1) for n in args.note)
    out = save_model(
        args.target, kind, config, state, {**meta, **notes, "shipped_as": "float16"}, dtype=torch.float16
    )
    print(f"{out}: {kind}, step {info.get('meta', {}).get('step')}")


if __name__ == "__main__":
    main()
