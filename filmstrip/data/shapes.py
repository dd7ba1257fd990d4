"""`shapes`: procedural clips of coloured shapes moving and bouncing, with exact ground truth.

Every clip is a `Scene`: 1-3 objects (shape, colour, size, start, velocity) on a plain or
textured dark background. A scene renders at any (T, H, W) and fps, and carries both a
caption in varied wording and structured ground truth (per object: shape, colour, size,
direction, whether it bounced, and its centre in pixels on every frame). That ground truth
is what makes generation measurable: later stages check generated videos against it.

Clip i of a dataset is a pure function of (seed, i), so the dataset is deterministic, needs
no storage, and works with any number of DataLoader workers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from filmstrip.config import require
from filmstrip.data.camera import CameraPath, random_path
from filmstrip.data.motion import (
    DIRECTIONS,
    bouncing_path,
    describe_motion,
    join_clauses,
    motion_words,
    track_speeds,
    words_of,
)
from filmstrip.errors import InputError
from filmstrip.io.layout import to_float_cthw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 225, 40),
    "green": (40, 190, 60),
    "cyan": (40, 210, 225),
    "blue": (45, 85, 235),
    "purple": (145, 60, 210),
    "pink": (245, 115, 185),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle")
# Shapes a dataset can draw that the default set leaves out: a five-pointed star is the new
# concept a LoRA is taught (`ShapesConfig.shapes`), one the bundled model never saw.
EXTRA_SHAPES = ("star",)
# Radius of the equal-area circle, as a fraction of the frame's shorter side.
SIZES: dict[str, float] = {"small": 0.085, "large": 0.14}

# Half-side of a square and circumradius of an equilateral triangle with the area of a unit circle.
_SQUARE_HALF = math.sqrt(math.pi) / 2
_TRIANGLE_R = math.sqrt(4 * math.pi / (3 * math.sqrt(3)))
# A star's inner radius over its outer one, and the outer radius of a star with the area of a
# unit circle: ten triangles with sides R and kR at 36 degrees make 5 k R^2 sin(36) of area.
_STAR_INNER = 0.5
_STAR_R = math.sqrt(math.pi / (5 * _STAR_INNER * math.sin(math.pi / 5)))


# The combinations the bundled text-to-video model was trained without (`filmstrip train t2v`
# and `filmstrip eval adherence` default to them): a test of composing attributes seen apart.
DEFAULT_HELD_OUT = (("green", "triangle", "up"), ("red", "square", "left"))


@dataclass(frozen=True)
class ShapesConfig:
    num_frames: int = 16
    height: int = 64
    width: int = 64
    fps: float = 8.0
    min_objects: int = 1
    max_objects: int = 3
    background: str = "mixed"  # "plain", "textured" or "mixed"
    still_probability: float = 0.1
    speed: tuple[float, float] = (0.1, 0.25)  # frame widths per second
    num_clips: int = 10_000
    seed: int = 0
    shapes: tuple[str, ...] = SHAPES  # drawn uniformly; EXTRA_SHAPES may be added
    # Share of clips filmed by a camera that pans and zooms on a random path (data/camera.py);
    # their background is always textured (a plain one would not show the camera move).
    camera: float = 0.0
    # Drawn uniformly. A small star is a blob once the bundled VAE has encoded it (its points
    # are narrower than a latent pixel), so a star concept is taught and tested large.
    sizes: tuple[str, ...] = tuple(SIZES)
    # (colour, shape, direction) combinations that never appear, "*" matching anything:
    # training without ("green", "triangle", "up") and testing on it measures whether a
    # model composes attributes it only saw apart.
    held_out: tuple[tuple[str, str, str], ...] = ()
    # Chance that a caption says where an object starts ("a red circle in the top left moves
    # right"). Without it the start is unknown to a text-to-video model, and that uncertainty
    # swamps the few pixels by which the direction of motion moves an object. (Measured: it
    # did not teach the bundled DiT direction in a fine-tune; see docs/RESULTS.md.)
    start_words: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "held_out", tuple(tuple(h) for h in self.held_out))
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "sizes", tuple(self.sizes))
        if not self.sizes or set(self.sizes) - set(SIZES):
            raise InputError(f"sizes are some of {', '.join(SIZES)}; got {self.sizes}")
        unknown = set(self.shapes) - set(SHAPES + EXTRA_SHAPES)
        if not self.shapes or unknown:
            raise InputError(f"shapes are some of {', '.join(SHAPES + EXTRA_SHAPES)}; got {self.shapes}")
        for combo in self.held_out:
            if len(combo) != 3:
                raise InputError(f"a held-out combination is (colour, shape, direction), got {combo}")
        if not 1 <= self.min_objects <= self.max_objects <= len(COLOURS):
            raise InputError(f"need 1 <= min_objects <= max_objects <= {len(COLOURS)}")
        if self.background not in ("plain", "textured", "mixed"):
            raise InputError(f"background must be plain, textured or mixed, got {self.background!r}")
        if not 0.0 <= self.start_words <= 1.0:
            raise InputError(f"start_words is a probability, got {self.start_words}")
        if not 0.0 <= self.camera <= 1.0:
            raise InputError(f"camera is a share of clips in [0, 1], got {self.camera}")
        require(self, at_least={"num_frames": 1, "height": 1, "width": 1}, above={"fps": 0})


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    start: tuple[float, float]  # normalised (x, y) of the centre at t = 0
    direction: str  # a key of DIRECTIONS
    speed: float  # frame widths per second


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]  # drawn in order: later ones on top
    background: str  # "plain" or "textured"
    background_level: int  # grey level of the background, 0..255
    texture_seed: int
    caption_seed: int = field(default=0, compare=False)
    camera: CameraPath | None = None  # None: a still camera on frame 0's view


def _extent(obj: ShapeObject, height: int, width: int) -> tuple[float, float, float, float]:
    """Pixels from the centre to the left/right and top/bottom edges of the shape."""
    r = SIZES[obj.size] * min(height, width)
    if obj.shape == "circle":
        return r, r, r, r
    if obj.shape == "square":
        a = _SQUARE_HALF * r
        return a, a, a, a
    if obj.shape == "star":  # one point up, two down at 36 degrees either side of vertical
        big_r = _STAR_R * r
        half_width = big_r * math.sin(2 * math.pi / 5)
        return half_width, half_width, big_r, big_r * math.cos(math.pi / 5)
    big_r = _TRIANGLE_R * r  # centroid to vertex; the base is big_r / 2 below the centroid
    half_base = big_r * math.sqrt(3) / 2
    return half_base, half_base, big_r, big_r / 2


def object_paths(scene: Scene, cfg: ShapesConfig) -> list[tuple[np.ndarray, bool]]:
    """For each object: centre positions (T, 2) in pixels (x, y) of the world (frame 0's view;
    what the screen shows without a camera) and whether it bounced. Under a moving camera an
    object bounces off the walls of the world box seen on every frame, so it never leaves
    the picture."""
    times = np.arange(cfg.num_frames) / cfg.fps
    (wx0, wx1), (wy0, wy1) = scene.camera.visible() if scene.camera is not None else ((0, 1), (0, 1))
    paths = []
    for obj in scene.objects:
        left, right, top, bottom = _extent(obj, cfg.height, cfg.width)
        # Positions are normalised by each axis; speed is in widths per second on both axes
        # so that diagonal motion is at 45 degrees on screen, whatever the aspect ratio.
        dx, dy = DIRECTIONS[obj.direction]
        velocity = (dx * obj.speed, dy * obj.speed * cfg.width / cfg.height)
        xy, bounced = bouncing_path(
            obj.start,
            velocity,
            times,
            (wx0 + left / cfg.width, wx1 - right / cfg.width),
            (wy0 + top / cfg.height, wy1 - bottom / cfg.height),
        )
        paths.append((xy * np.array([cfg.width, cfg.height]), bounced))
    return paths


def to_screen(xy_t2: np.ndarray, camera: CameraPath | None, cfg: ShapesConfig) -> np.ndarray:
    """World pixel positions (T, 2) as the camera shows them on each frame (pixels)."""
    if camera is None:
        return xy_t2
    a = camera.as_array()  # (T, 3)
    size = np.array([cfg.width, cfg.height])
    return ((xy_t2 / size - 0.5 - a[:, :2]) * a[:, 2:] + 0.5) * size


def screen_paths(scene: Scene, cfg: ShapesConfig) -> list[np.ndarray]:
    """Each object's centre (T, 2) in screen pixels: where the pixels show it."""
    return [to_screen(xy, scene.camera, cfg) for xy, _ in object_paths(scene, cfg)]


def _coverage(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Fraction of each pixel covered: a signed distance with a one-pixel anti-aliased edge."""
    if shape == "circle":
        sdf = np.hypot(dx, dy) - r
    elif shape == "square":
        sdf = np.maximum(np.abs(dx), np.abs(dy)) - _SQUARE_HALF * r
    elif shape == "star":
        sdf = _star_sdf(dx, dy, _STAR_R * r)

    else:  # equilateral triangle pointing up: intersection of three half-planes
        inradius = _TRIANGLE_R * r / 2
        s, c = math.sqrt(3) / 2, 0.5
        sdf = np.maximum.reduce([dy, s * dx - c * dy, -s * dx - c * dy]) - inradius
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _star_sdf(dx: np.ndarray, dy: np.ndarray, big_r: float) -> np.ndarray:
    """Signed distance to a five-pointed star (a point up) of outer radius `big_r`: the
    distance to its nearest edge, negative inside (an even-odd crossing count)."""
    angles = -math.pi / 2 + np.arange(10) * math.pi / 5  # image y grows down: -90 degrees is up
    radii = np.where(np.arange(10) % 2 == 0, big_r, _STAR_INNER * big_r)
    ax, ay = radii * np.cos(angles), radii * np.sin(angles)
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    distance = np.full(dx.shape, np.inf)
    inside = np.zeros(dx.shape, dtype=bool)
    for x0, y0, x1, y1 in zip(ax, ay, bx, by, strict=True):
        ex, ey = x1 - x0, y1 - y0
        u = np.clip(((dx - x0) * ex + (dy - y0) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        distance = np.minimum(distance, np.hypot(dx - x0 - u * ex, dy - y0 - u * ey))
        crosses = (y0 > dy) != (y1 > dy)
        inside ^= crosses & (dx < x0 + (dy - y0) * ex / np.where(ey == 0, 1.0, ey))
    return np.where(inside, -distance, distance)


def _view(camera: CameraPath, t: int, cfg: ShapesConfig) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates (in frame 0's pixels) of every pixel centre of frame t: (yy, xx)."""
    x, y, s = camera.x[t], camera.y[t], camera.scale[t]
    ii, jj = np.mgrid[0 : cfg.height, 0 : cfg.width] + 0.5
    return ((ii / cfg.height - 0.5) / s + 0.5 + y) * cfg.height, (
        (jj / cfg.width - 0.5) / s + 0.5 + x
    ) * cfg.width


def _background(
    scene: Scene, cfg: ShapesConfig, view: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """An (H, W, 3) float background: flat, or flat plus low-contrast stripes and blotches,
    drawn at the world points `view` (yy, xx) of a camera's frame (default: frame 0's pixels)."""
    bg = np.full((cfg.height, cfg.width, 3), float(scene.background_level))
    if scene.camera is not None:
        return bg + _camera_texture(scene, cfg, view)
    if scene.background == "textured":
        rng = np.random.default_rng(scene.texture_seed)
        yy, xx = view if view is not None else np.mgrid[0 : cfg.height, 0 : cfg.width]
        yy, xx = yy / min(cfg.height, cfg.width), xx / min(cfg.height, cfg.width)
        angle, freq = rng.uniform(0, math.pi), rng.uniform(4, 10)
        stripes = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)))
        blobs = sum(
            np.sin(2 * math.pi * (rng.uniform(1, 3) * xx + rng.uniform(0, 1)))
            * np.sin(2 * math.pi * (rng.uniform(1, 3) * yy + rng.uniform(0, 1)))
            for _ in range(2)
        )
        bg += (7 * stripes + 6 * blobs)[..., None]
    return bg


def _camera_texture(
    scene: Scene, cfg: ShapesConfig, view: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """(H, W, 1) the world's texture under a moving camera: two crossing sets of coarse,
    strong stripes. Crossing, because one set only shows motion across it (the aperture
    problem); coarse (2-4 periods a frame) and strong (+-40 grey levels), because through the
    bundled VAE the plain texture's motion was mostly lost (a 15 px pan read back as 3 px)
    and a model cannot learn a camera it cannot see. Grey, so no object detector takes it."""
    rng = np.random.default_rng(scene.texture_seed)
    yy, xx = view if view is not None else np.mgrid[0 : cfg.height, 0 : cfg.width]
    yy, xx = yy / min(cfg.height, cfg.width), xx / min(cfg.height, cfg.width)
    angle = rng.uniform(0, math.pi)
    texture = 30.0
    for a in (angle, angle + rng.uniform(0.35, 0.65) * math.pi):
        texture = texture + 40 * np.sin(
            2 * math.pi * rng.uniform(2, 4) * (xx * math.cos(a) + yy * math.sin(a))
        )
    return texture[..., None]


def render(scene: Scene, cfg: ShapesConfig) -> np.ndarray:
    """The scene as uint8 frames (T, H, W, 3)."""
    if scene.camera is None:
        frames = np.broadcast_to(_background(scene, cfg), (cfg.num_frames, cfg.height, cfg.width, 3)).copy()
        zoom = np.ones(cfg.num_frames)
    else:
        frames = np.stack(
            [_background(scene, cfg, _view(scene.camera, t, cfg)) for t in range(cfg.num_frames)]
        )
        zoom = np.array(scene.camera.scale)
    for obj, xy in zip(scene.objects, screen_paths(scene, cfg), strict=True):
        colour = np.array(COLOURS[obj.colour], dtype=np.float64)
        for t, (cx, cy) in enumerate(xy):
            r = SIZES[obj.size] * min(cfg.height, cfg.width) * zoom[t]
            reach = 2.0 * r + 2  # bounding box half-size: covers every shape's extent
            y0, y1 = max(0, int(cy - reach)), min(cfg.height, int(cy + reach) + 1)
            x0, x1 = max(0, int(cx - reach)), min(cfg.width, int(cx + reach) + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            # Pixel (i, j) covers [j, j+1) x [i, i+1); its centre is at (j + 0.5, i + 0.5).
            alpha = _coverage(obj.shape, xx + 0.5 - cx, yy + 0.5 - cy, r)[..., None]
            patch = frames[t, y0:y1, x0:x1]
            frames[t, y0:y1, x0:x1] = patch * (1 - alpha) + colour * alpha
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def truth_masks(truth: dict, height: int, width: int) -> np.ndarray:
    """float32 (T, H, W) in [0, 1]: where the truth's objects are on each frame (the union of
    their anti-aliased coverage), drawn from its pixel tracks; a structure map for ControlNet."""
    frames = len(truth["objects"][0]["positions"]) if truth["objects"] else 0
    masks = np.zeros((frames, height, width), np.float32)
    zoom = [c["scale"] for c in truth["camera"]] if truth.get("camera") else [1.0] * frames
    for obj in truth["objects"]:
        for t, (cx, cy) in enumerate(obj["positions"]):
            r = obj["radius_px"] * zoom[t]
            reach = 2.0 * r + 2
            y0, y1 = max(0, int(cy - reach)), min(height, int(cy + reach) + 1)
            x0, x1 = max(0, int(cx - reach)), min(width, int(cx + reach) + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            alpha = _coverage(obj["shape"], xx + 0.5 - cx, yy + 0.5 - cy, r)
            masks[t, y0:y1, x0:x1] = np.maximum(masks[t, y0:y1, x0:x1], alpha)
    return masks


def in_full_view(truth: dict, height: int, width: int, margin_px: int = 1) -> np.ndarray:
    """bool (objects, T): whether each object, grown by `margin_px`, touches no other object on
    each frame. Where it does, one hides part of the other (or their blurred edges meet), and a
    position read from pixels is the visible part's, not the object's."""
    frames = len(truth["objects"][0]["positions"]) if truth["objects"] else 0
    grow = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    masks = [truth_masks({**truth, "objects": [obj]}, height, width) > 0 for obj in truth["objects"]]
    clear = np.ones((len(masks), frames), dtype=bool)
    for i, mask in enumerate(masks):
        others = np.zeros_like(mask)
        for j, other in enumerate(masks):
            if j != i:
                others |= other
        for t in range(frames):
            clear[i, t] = not (cv2.dilate(mask[t].astype(np.uint8), grow) > 0)[others[t]].any()
    return clear


def is_held_out(colour: str, shape: str, direction: str, held_out) -> bool:
    return any(
        all(want in ("*", have) for want, have in zip(combo, (colour, shape, direction), strict=True))
        for combo in held_out
    )


def sample_scene(rng: np.random.Generator, cfg: ShapesConfig) -> Scene:
    """Draw a random scene: distinct colours, random shapes, sizes, starts and directions
    (and, for a `camera` share, a camera path; starts then lie inside what it always sees)."""
    camera = None
    if cfg.camera and rng.random() < cfg.camera:
        camera = random_path(rng, cfg.num_frames, cfg.fps)
    (x0, x1), (y0, y1) = camera.visible() if camera is not None else ((0.0, 1.0), (0.0, 1.0))
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    moving = [d for d in DIRECTIONS if d != "still"]
    objects: list[ShapeObject] = []
    for colour in colours:
        still = rng.random() < cfg.still_probability
        size = str(rng.choice(cfg.sizes))
        # Start apart from the objects already placed, so that none begins hidden (bounded tries).
        for _ in range(20):
            start = (
                float(rng.uniform(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0))),
                float(rng.uniform(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0))),
            )
            if all(math.dist(start, o.start) > 1.6 * (SIZES[size] + SIZES[o.size]) for o in objects):
                break
        # Redraw shape and direction until the object is not a held-out combination.
        for _ in range(100):
            shape = str(rng.choice(cfg.shapes))
            direction = "still" if still else str(rng.choice(moving))
            if not is_held_out(str(colour), shape, direction, cfg.held_out):
                break
        else:
            raise InputError(f"held_out {cfg.held_out} leaves no shape and direction for a {colour} object")
        objects.append(
            ShapeObject(
                shape=shape,
                colour=str(colour),
                size=size,
                start=start,
                direction=direction,
                speed=0.0 if still else float(rng.uniform(*cfg.speed)),
            )
        )
    kind = cfg.background if cfg.background != "mixed" else str(rng.choice(["plain", "textured"]))
    kind = "textured" if camera is not None else kind
    return Scene(
        objects=tuple(objects),
        background=kind,
        background_level=int(rng.integers(15, 60)),
        texture_seed=int(rng.integers(2**31)),
        caption_seed=int(rng.integers(2**31)),
        camera=camera,
    )


# Where an object starts, by thirds of the range starts are drawn from (0.2-0.8 on each axis).
_REGIONS = (
    ("top left", "top", "top right"),
    ("left", "centre", "right"),
    ("bottom left", "bottom", "bottom right"),
)
_REGION_PHRASES = {
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "left": ("on the left", "at the left side"),
    "right": ("on the right", "at the right side"),
    "centre": ("in the centre", "in the middle"),
    **{
        corner: (f"in the {corner}", f"near the {corner} corner")
        for corner in ("top left", "top right", "bottom left", "bottom right")
    },
}


def start_region(start: tuple[float, float]) -> str:
    """'top left', 'centre', ...: the third of the frame (within the start range) a start is in."""
    col, row = (0 if v < 0.4 else 2 if v > 0.6 else 1 for v in start)
    return _REGIONS[row][col]


def describe_start(start: tuple[float, float], rng: np.random.Generator) -> str:
    """'in the top left', 'starting on the right', ...: where an object is on the first frame."""
    region = start_region(start)
    phrase = str(rng.choice(_REGION_PHRASES[region]))
    return f"starting {phrase}" if rng.random() < 0.3 else phrase


ON_TEXTURE = "over a textured background"  # what a caption says of a textured background


@functools.cache
def caption_words() -> frozenset[str]:
    """Every word a `shapes` caption can hold: all that a model trained on them has read."""
    phrases = [*COLOURS, *SHAPES, *EXTRA_SHAPES, *SIZES, "a an one starting on a dark background", ON_TEXTURE]
    phrases += [p for options in _REGION_PHRASES.values() for p in options]
    return motion_words() | frozenset(w for p in phrases for w in words_of(p))


def caption(scene: Scene, cfg: ShapesConfig) -> str:
    """A natural caption that is true of the scene: 'a red circle drifts to the left while ...'."""
    rng = np.random.default_rng(scene.caption_seed)
    # Start phrases draw from a stream of their own, so that start_words = 0 gives exactly the
    # captions of a dataset without them, and start_words = p only inserts phrases.
    start_rng = np.random.default_rng([scene.caption_seed, 1])
    clauses = []
    for obj, (_, bounced) in zip(scene.objects, object_paths(scene, cfg), strict=True):
        noun = f"{obj.size} {obj.colour}" if rng.random() < 0.4 else obj.colour
        article = "one" if rng.random() < 0.1 else ("an" if noun[0] in "aeiou" else "a")
        where = f" {describe_start(obj.start, start_rng)}" if start_rng.random() < cfg.start_words else ""
        clauses.append(f"{article} {noun} {obj.shape}{where} {describe_motion(obj.direction, bounced, rng)}")
    text = join_clauses(clauses, rng)
    if rng.random() < 0.25:
        text += " on a dark background" if scene.background == "plain" else f" {ON_TEXTURE}"
    return text


def ground_truth(scene: Scene, cfg: ShapesConfig) -> dict:
    """JSON-ready truth: per object its attributes, direction, bounce flag and centre per frame (px)."""
    objects = []
    for depth, (obj, (xy, bounced)) in enumerate(zip(scene.objects, object_paths(scene, cfg), strict=True)):
        entry = asdict(obj)
        entry.update(
            depth=depth,
            radius_px=SIZES[obj.size] * min(cfg.height, cfg.width),
            bounced=bounced,
            positions=np.round(to_screen(xy, scene.camera, cfg), 3).tolist(),
        )
        if scene.camera is not None:
            entry["world_positions"] = np.round(xy, 3).tolist()
        objects.append(entry)
    truth = {"objects": objects, "background": scene.background, "fps": cfg.fps}
    if scene.camera is not None:
        truth["camera"] = scene.camera.to_json()
    return truth


def scene_speeds(scene: Scene, cfg: ShapesConfig) -> np.ndarray:
    """float32 (T,): the objects' mean speed on each frame in frame short sides per second
    (data/motion.py), exact from their paths; what a motion-conditioned model trains on."""
    if cfg.num_frames < 2:
        return np.zeros(cfg.num_frames, np.float32)
    tracks = np.stack([xy for xy, _ in object_paths(scene, cfg)])
    return track_speeds(tracks, min(cfg.height, cfg.width), cfg.fps).astype(np.float32)


class ShapesDataset(Dataset):
    """Clip i -> {"video": float (C, T, H, W) in [-1, 1], "caption": str, "truth": dict,
    "motion": float32 (T,) the objects' mean speed per frame, from the ground truth}."""

    def __init__(self, cfg: ShapesConfig | None = None):
        self.cfg = cfg or ShapesConfig()

    def __len__(self) -> int:
        return self.cfg.num_clips

    def scene(self, i: int) -> Scene:
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} out of range for a dataset of {len(self)} clips")
        return sample_scene(np.random.default_rng([self.cfg.seed, i]), self.cfg)

    def __getitem__(self, i: int) -> dict:
        scene = self.scene(i)
        return {
            "video": to_float_cthw(render(scene, self.cfg)),
            "caption": caption(scene, self.cfg),
            "truth": ground_truth(scene, self.cfg),
            "motion": scene_speeds(scene, self.cfg),
        }


def collate_clips(batch: list[dict]) -> dict:
    """Stack videos into (B, C, T, H, W); keep captions, truths and the like as lists (None for
    an item without one: in a folder, only some clips may have a focus mask)."""
    out = {"video": torch.stack([item["video"] for item in batch])}
    for key in dict.fromkeys(k for item in batch for k in item):
        if key != "video":
            out[key] = [item.get(key) for item in batch]
    return out
