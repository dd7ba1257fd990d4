"""Fit this checkout to a lent GPU's call: what travels, the shipped weights a call leaves
behind, and the text encoder's files made small enough to carry.

A device call carries the working tree, tracked files included, up to 64 MiB (see the device
tool's README); this tree holds about 88 MB of shipped weights. So before a call:

    python scripts/device_tree.py slim --keep t2v vae3d     # the weights this work needs
    python scripts/device_tree.py text-encoder .device/minilm  # fp16 MiniLM files, about 45 MB
    python scripts/device_tree.py size --carry .device       # what the call will carry
    ... the call, with FILMSTRIP_TEXT_ENCODER=.device/minilm there ...
    python scripts/device_tree.py restore                    # the checkout as it was

`slim` takes the other weight folders out of git's index (`git rm --cached`: the files stay
on disk) and lists them in `.git/info/exclude`, so the call leaves them behind; `restore` puts
the index and the exclude file back. Nothing here is committed: commit only after `restore`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = "filmstrip/weights"
BEGIN, END = (
    "# device_tree: left behind for a device call (scripts/device_tree.py restore)",
    "# device_tree: end",
)
LIMIT = 64 * 2**20


def git(*args: str, root: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def exclude_file(root: Path) -> Path:
    return root / git("rev-parse", "--git-path", "info/exclude", root=root).strip()


def traveling_bytes(root: Path, carry: list[str]) -> int:
    """Tracked files and untracked files git does not ignore, plus the carried paths."""
    names = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", root=root).split("\0")
    total = sum((root / n).stat().st_size for n in names if n and (root / n).is_file())
    for c in carry:
        path = root / c
        total += (
            sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
    return total


def slim(root: Path, keep: list[str]) -> list[str]:
    """Leave every shipped weight folder but `keep` behind; returns the folders left."""
    if BEGIN in _read(exclude_file(root)):
        raise SystemExit("already slim: run `restore` first")
    folders = sorted(p.name for p in (root / WEIGHTS).iterdir() if p.is_dir())
    unknown = sorted(set(keep) - set(folders))
    if unknown:
        raise SystemExit(f"no shipped weights named {', '.join(unknown)}; they are {', '.join(folders)}")
    left = [f for f in folders if f not in keep]
    for name in left:
        git("rm", "-r", "-q", "--cached", f"{WEIGHTS}/{name}", root=root)
    lines = [BEGIN, *(f"/{WEIGHTS}/{name}/" for name in left), END]
    path = exclude_file(root)
    before = _read(path).rstrip("\n")
    path.write_text((before + "\n" if before else "") + "\n".join(lines) + "\n")
    return left


def restore(root: Path) -> None:
    """The index and the exclude file as they were before `slim`."""
    path = exclude_file(root)
    text = _read(path)
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        path.write_text(head + rest.partition(END)[2].lstrip("\n"))
    git("reset", "-q", "--", WEIGHTS, root=root)


def text_encoder(out: Path) -> None:
    """The MiniLM files filmstrip reads (tokenizer.json, model.safetensors), weights in fp16."""
    from safetensors.torch import load_file, save_file

    from filmstrip.text.encoder import weights_dir

    home = weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_bytes((home / "tokenizer.json").read_bytes())
    tensors = {
        k: v.half() if v.is_floating_point() else v
        for k, v in load_file(str(home / "model.safetensors")).items()
    }
    save_file(tensors, str(out / "model.safetensors"))


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("slim", help="leave the shipped weights the call does not need behind")
    p.add_argument("--keep", nargs="*", default=[], help="weight folders the call needs, e.g. t2v vae3d")
    sub.add_parser("restore", help="the checkout as it was before slim")
    p = sub.add_parser("size", help="what a call would carry")
    p.add_argument("--carry", nargs="*", default=[], help="the paths the call names in carry")
    p = sub.add_parser("text-encoder", help="write fp16 MiniLM files here")
    p.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "slim":
        left = slim(ROOT, args.keep)
        print(json.dumps({"left_behind": left, "travels_mib": round(traveling_bytes(ROOT, []) / 2**20, 1)}))
    elif args.command == "restore":
        restore(ROOT)
    elif args.command == "size":
        size = traveling_bytes(ROOT, args.carry)
        print(f"{size / 2**20:.1f} MiB travel (limit 64)")
        if size > LIMIT:
            sys.exit(1)
    else:
        text_encoder(args.out)


if __name__ == "__main__":
    main()
