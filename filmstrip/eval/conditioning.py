"""Do given frames come out where they were given, and does the motion between them follow
the prompt? Measured on fresh `shapes` scenes, whose every object position is known.

Each measurement generates one video per scene from its caption and frames of its own
ground-truth clip, and reads object positions from pixels with the adherence detector
(eval/adherence.py), on the generated video and on the given frames alike, so the detector's
own bias cancels out of every position error:

* **image to video** (`mode="i2v"`): frame 0 given. First-frame PSNR against the given image
  (its VAE reconstruction is the ceiling), each object's start position error, and the
  prompt's colour, shape and direction adherence of the whole clip.
* **first + last frame** (`"first-last"`): frames 0 and T - 1 given. Position error of each
  object at both ends, and for objects that move straight (no bounce in the truth) whether
  the path between is monotone in x and y.
* **extension** (`"extend"`): the first `context` frames of the truth given, the rest drawn.
  Each object's direction over the new frames against the truth's, read over the truth's
  longest straight stretch of them (so a bounce one frame after the join does not make the
  answer a compass octant of a one-pixel step), and the seam: its speed across the join
  against its mean speed inside the given frames, where the truth keeps its speed across the
  join (no bounce there) and the object is in full view on both sides. And whether the
  continuation reads the speed from the clip at all: each object's mean speed over the new
  frames against the given one (the share within 10%; over objects, the robust slope of new
  speed on given speed and their rank correlation). And how even the drawn motion is: the
  share of new steps within 20% of their own object's mean new step (`steps_even_20pct`):
  the join is one such step, so the seam is no better than they are even, whatever speed is
  carried.

Editing a clip (pipelines/edit.py) is measured on the same scenes, each object recoloured in
the prompt to a colour the scene does not have: `v2v_curve` over SDEdit strengths and
`inversion_edit` report how often every new colour appears (the edit's adherence) and how
far each recoloured object is from where the source clip had it (the structure kept), on
the frames where it is in full view.

Positions are coverage-weighted centres (`coverage_centre`, to about 0.02 px on rendered
clips). Seams and edits compare positions only on frames where the truth shows the object in
full view (`in_full_view`): where one object hides part of another, pixels give the visible
part's centre, which moves with the object in front.

`vae_ceiling` scores what a perfect model would give through the VAE: the truth's own
continuation, and the perfect recolouring, each encoded and decoded. No latent model can beat
it on these measures, so each target is read against it.

`guidance_grid` runs image to video over text scale x image scale and adds flicker: the
mean frame-to-frame change of the background (no object there in either frame, grown by two
pixels), in 8-bit grey levels; `shapes` backgrounds never move, so all of it is flicker.

Scenes come from `scene_seed`, not the training seeds (0 and 1), so neither the prompts
nor the images were seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import replace as dc_replace

import cv2
import numpy as np
import torch
from tqdm import tqdm

from filmstrip.data.motion import FULL_SPEED
from filmstrip.data.shapes import (
    COLOURS,
    Scene,
    ShapesConfig,
    caption,
    ground_truth,
    in_full_view,
    render,
    sample_scene,
)
from filmstrip.errors import InputError
from filmstrip.eval.adherence import AdherenceConfig, compass, detect, score, segment
from filmstrip.eval.metrics import psnr
from filmstrip.eval.motion_strength import track_speed
from filmstrip.io.layout import to_float_cthw, to_uint8_thwc
from filmstrip.pipelines.conditions import ImageCondition, VideoCondition
from filmstrip.pipelines.denoise import decode, encode
from filmstrip.pipelines.edit import EDIT_STRENGTH, EDIT_TEXT_SCALE, SHARING, Sharing, edit, video_to_video
from filmstrip.pipelines.generate import GenerateConfig, Pipeline, generate

MODES = ("i2v", "first-last", "last", "extend")


@dataclass(frozen=True)
class ConditionSuite:
    num_scenes: int = 100
    frames: int = 17
    size: int = 64
    fps: float = 8.0
    scene_seed: int = 4242
    context: int = 9  # extension: frames of the truth given

    def __post_init__(self):
        if not 1 <= self.context < self.frames:
            raise InputError(
                f"context must leave frames to draw: 1 to {self.frames - 1} of the {self.frames} "
                f"frames given, got {self.context}"
            )


def suite_scenes(cfg: ConditionSuite) -> list[dict]:
    """[{"caption", "truth", "video" (3, T, H, W) in [-1, 1], "recoloured": (caption, truth)
    with every object in a new colour}] of fresh scenes."""
    shapes = ShapesConfig(
        num_frames=cfg.frames, height=cfg.size, width=cfg.size, fps=cfg.fps, seed=cfg.scene_seed
    )
    out = []
    for i in range(cfg.num_scenes):
        scene = sample_scene(np.random.default_rng([shapes.seed, i]), shapes)
        edited = recolour(scene, np.random.default_rng([shapes.seed, i, 1]))
        out.append(
            {
                "caption": caption(scene, shapes),
                "truth": ground_truth(scene, shapes),
                "video": to_float_cthw(render(scene, shapes)),
                "recoloured": (caption(edited, shapes), ground_truth(edited, shapes)),
                "recoloured_video": to_float_cthw(render(edited, shapes)),  # what a perfect edit gives
            }
        )
    return out


def recolour(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with every object in another colour that no object of it had."""
    unused = [c for c in COLOURS if c not in {o.colour for o in scene.objects}]
    picks = rng.permutation(unused)[: len(scene.objects)]
    objects = tuple(dc_replace(o, colour=str(c)) for o, c in zip(scene.objects, picks, strict=True))
    return dc_replace(scene, objects=objects)


def tracks(video: torch.Tensor, fps: float) -> dict[str, list]:
    """colour -> per-frame centre (x, y) or None, as the adherence detector sees them (to a
    fraction of a pixel: `coverage_centre`)."""
    cfg = AdherenceConfig(min_frames_fraction=1e-6, subpixel=True)
    return {d.colour: d.track for d in detect(video, fps, cfg)}


def straight_stretch(positions: list, start: int) -> tuple[int, int] | None:
    """(first, last) frame of the longest stretch of a true track from `start` on that goes
    straight at one speed (every step the same: no bounce inside it), or None under 3 steps."""
    steps = np.diff(np.asarray(positions, dtype=np.float64)[start:], axis=0)
    best, first = (0, 0), 0
    for j in range(1, len(steps) + 1):
        if j == len(steps) or np.abs(steps[j] - steps[first]).max() > 0.01:  # truths keep 3 decimals
            best = max(best, (j - first, first))
            first = j
    length, first = best
    return (start + first, start + first + length) if length >= 3 else None


def _fitted_direction(track: list, frames: list[int], width: int, fps: float) -> str | None:
    """Compass direction of the least-squares velocity through a track's points on `frames`
    (None with fewer than 3 of them found)."""
    points = [(t, track[t]) for t in frames if track[t] is not None]
    if len(points) < 3:
        return None
    times = np.array([t for t, _ in points], dtype=np.float64)
    xy = np.array([p for _, p in points], dtype=np.float64)
    velocity = np.polyfit(times, xy, 1)[0] * fps / width  # frame widths per second
    return compass(velocity)


def _distance(a, b) -> float | None:
    return None if a is None or b is None else float(np.hypot(a[0] - b[0], a[1] - b[1]))


def _steps(track: list, frames: range, usable: np.ndarray) -> list[float]:
    """The track's step lengths over `frames` where `usable` (straight, in full view) and the
    detector found the object at both ends."""
    found = (_distance(track[j], track[j + 1]) for j in frames if usable[j])
    return [d for d in found if d is not None]


def _monotone(track: list, slack: float = 0.75) -> bool:
    """No step of x or y goes against the overall direction by more than `slack` pixels."""
    points = np.array([p for p in track if p is not None])
    if len(points) < 3:
        return False
    steps = np.diff(points, axis=0)
    overall = np.sign(points[-1] - points[0])
    against = -steps * overall  # > 0 where a step goes backwards
    return bool((against <= slack).all())


def conditions_for(mode: str, video: torch.Tensor, cfg: ConditionSuite) -> list:
    if mode == "i2v":
        return [ImageCondition(video[:, 0], 0)]
    if mode == "first-last":
        return [ImageCondition(video[:, 0], 0), ImageCondition(video[:, -1], -1)]
    if mode == "last":  # a keyframe alone: where image guidance has the most to do
        return [ImageCondition(video[:, -1], -1)]
    if mode == "extend":
        return [VideoCondition(video[:, : cfg.context], 0)]
    raise InputError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")


def background_flicker(video: torch.Tensor, grow: int = 2) -> float:
    """Mean |frame t+1 - frame t| over pixels with no object in either frame (dilated by
    `grow`), in 8-bit grey levels, for a (3, T, H, W) clip in [-1, 1]."""
    frames = to_uint8_thwc(video)
    frames = frames.numpy() if isinstance(frames, torch.Tensor) else frames
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    objects = [cv2.dilate((segment(f) >= 0).astype(np.uint8), kernel) > 0 for f in frames]
    changes = []
    for t in range(len(frames) - 1):
        still = ~(objects[t] | objects[t + 1])
        if still.any():
            diff = np.abs(frames[t + 1].astype(np.float32) - frames[t].astype(np.float32)).mean(-1)
            changes.append(float(diff[still].mean()))
    return float(np.mean(changes)) if changes else float("nan")


def score_row(mode: str, generated: torch.Tensor, item: dict, cfg: ConditionSuite) -> dict:
    """One scene's measurements (see the module docstring); positions in pixels."""
    given, truth = item["video"], item["truth"]
    gen_tracks = tracks(generated, cfg.fps)
    # Extension is read against the truth's own positions; the other modes against the given frames'.
    true_tracks = tracks(given, cfg.fps) if mode != "extend" else {}
    row: dict = {"prompt": item["caption"], "objects": len(truth["objects"])}
    last = cfg.frames - 1
    if mode == "i2v":
        row["psnr_first"] = float(psnr(generated[None, :, 0], given[None, :, 0].to(generated.device))[0])
        row["flicker"] = background_flicker(generated)
        row.update(
            {k: v for k, v in score(generated, truth).items() if k in ("colour", "shape", "direction")}
        )
        row["start_error"] = [
            _distance(gen_tracks.get(c, [None])[0], t[0]) for c, t in true_tracks.items() if t[0] is not None
        ]
    elif mode == "first-last":
        row["end_error"] = [
            _distance(gen_tracks.get(c, [None] * cfg.frames)[k], t[k])
            for c, t in true_tracks.items()
            for k in (0, last)
            if t[k] is not None
        ]
        straight = [o["colour"] for o in truth["objects"] if not o["bounced"] and o["direction"] != "still"]
        row["monotone"] = [_monotone(gen_tracks[c]) for c in straight if c in gen_tracks and c in true_tracks]
    elif mode == "last":
        row["end_error"] = [
            _distance(gen_tracks.get(c, [None] * cfg.frames)[last], t[last])
            for c, t in true_tracks.items()
            if t[last] is not None
        ]
        row["flicker"] = background_flicker(generated)
        row.update(
            {k: v for k, v in score(generated, truth).items() if k in ("colour", "shape", "direction")}
        )
    else:
        row.update(_extension(gen_tracks, truth, cfg, generated.shape[-1]))
    return row


def _extension(gen_tracks: dict, truth: dict, cfg: ConditionSuite, width: int) -> dict:
    """Per moving object: whether its direction over the new frames is the truth's, and its
    speed across the join over its speed inside the given frames. Both are read where the
    truth makes them well posed: the direction over the truth's longest straight stretch
    of the new frames (a compass octant from a one-step stretch before a bounce is noise),
    and the seam only where the truth itself keeps its speed across the join (no bounce
    there) and the object is in full view on both sides of it; its inside speed from the
    given frames' steps that are in full view and straight."""
    k = cfg.context - 1  # the last given frame
    clear = in_full_view(truth, cfg.size, cfg.size)
    directions, seams, given_speed, new_speed, evenness = [], [], [], [], []
    for obj, visible in zip(truth["objects"], clear, strict=True):
        if obj["direction"] == "still":
            continue
        track = gen_tracks.get(obj["colour"], [None] * cfg.frames)
        steps = np.diff(np.asarray(obj["positions"], dtype=np.float64), axis=0)
        stretch = straight_stretch(obj["positions"], k)
        if stretch:
            wanted = compass(steps[stretch[0]] * cfg.fps / width)
            frames = list(range(stretch[0], stretch[1] + 1))
            directions.append(_fitted_direction(track, frames, width, cfg.fps) == wanted)
        speed = np.linalg.norm(steps, axis=1)
        regular = np.abs(speed - np.median(speed)) <= 0.01  # steps with no bounce
        usable = regular & visible[:-1] & visible[1:]  # straight steps, in full view at both ends
        inside = _steps(track, range(k), usable)
        inside_speed = float(np.mean(inside)) if len(inside) >= 3 else 0.0
        join = _distance(track[k], track[k + 1])
        if usable[k] and inside_speed > 0.5 and join is not None:
            seams.append(join / inside_speed)
        # The speed over all the new frames, against the given one: a seam is one step, this
        # says whether the continuation reads the speed from the clip at all.
        new = _steps(track, range(k + 1, cfg.frames - 1), usable)
        pace = float(np.mean(new)) if len(new) >= 3 else None
        if inside_speed > 0.5 and pace is not None:
            given_speed.append(inside_speed)
            new_speed.append(pace)
        # Each new step against the continuation's own mean step: how even the drawn motion
        # is at whatever speed it took. The join is a step like these: where they are uneven,
        # so is it (RESULTS, session 33).
        if pace is not None and pace > 0.5:
            evenness += [d / pace for d in new]
    return {
        "direction": directions,
        "seam_ratio": seams,
        "speed_given": given_speed,
        "speed_new": new_speed,
        "step_ratio": evenness,
    }


def given_motion(video: torch.Tensor, fps: float) -> float:
    """The motion strength a clip shows (a share of FULL_SPEED, at most 1): its objects'
    mean speed from frame to frame as the detector tracks them, the measure the motion
    condition was trained on (data/motion.track_speeds, from the truth), read from pixels."""
    side = min(video.shape[-2:])
    speeds = [track_speed(track, side, fps) for track in tracks(video, fps).values()]
    speeds = [s for s in speeds if s is not None]
    return min(float(np.mean(speeds)) / FULL_SPEED, 1.0) if speeds else 0.0


def run_conditioning(
    pipe: Pipeline,
    mode: str,
    cfg: ConditionSuite | None = None,
    gen: GenerateConfig | None = None,
    progress: bool = True,
    batch_size: int = 10,
    given_speed: bool = False,
) -> dict:
    """Generate and score every scene of the suite in `mode`; returns {"summary", "rows"}.
    given_speed: extension by a motion-conditioned model told each given clip's speed, as
    its frames show it (`given_motion`)."""
    cfg = cfg or ConditionSuite()
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    if given_speed and mode != "extend":
        raise InputError(f"the given clip's speed is told in extension only, not in {mode!r}")
    gen = gen or GenerateConfig(frames=cfg.frames, height=cfg.size, width=cfg.size)
    rows = []
    scenes = suite_scenes(cfg)
    bar = tqdm(total=len(scenes), desc=mode, unit="video", disable=not progress)
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        conditions = [conditions_for(mode, item["video"], cfg) for item in chunk]
        # Row k of a batch takes seed + k: scene i is drawn from seed + i at any batch size.
        asked = replace(gen, seed=gen.seed + start)
        if given_speed:
            asked = replace(
                asked, motion=tuple(given_motion(it["video"][:, : cfg.context], cfg.fps) for it in chunk)
            )
        videos = generate(pipe, [it["caption"] for it in chunk], asked, conditions=conditions)
        rows += [score_row(mode, video.cpu(), item, cfg) for video, item in zip(videos, chunk, strict=True)]
        bar.update(len(chunk))
    bar.close()
    return {"summary": summarize(mode, rows), "rows": rows}


@torch.no_grad()
def vae_ceiling(pipe: Pipeline, mode: str, cfg: ConditionSuite | None = None, batch_size: int = 10) -> dict:
    """The summary a perfect model scores through the VAE: for "extend", the given frames then
    the truth's VAE reconstruction after them; for "edit", the perfect recolouring's."""
    if mode not in ("extend", "edit"):
        raise InputError(f"the VAE ceiling is measured for extend and edit, not {mode!r}")
    cfg = cfg or ConditionSuite()
    scenes, rows = suite_scenes(cfg), []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        key = "recoloured_video" if mode == "edit" else "video"
        clips = torch.stack([it[key] for it in chunk])
        passed = decode(pipe, encode(pipe, clips), clips.shape[2]).cpu()
        if mode == "edit":
            rows += [edit_row(v, it, cfg.fps) for v, it in zip(passed, chunk, strict=True)]
        else:
            joined = torch.cat([clips[:, :, : cfg.context], passed[:, :, cfg.context :]], dim=2)
            rows += [score_row(mode, v, it, cfg) for v, it in zip(joined, chunk, strict=True)]
    return summarize_edits(rows) if mode == "edit" else summarize(mode, rows)


def _flat(rows: list[dict], key: str) -> np.ndarray:
    values = [v for r in rows for v in (r[key] if isinstance(r[key], list) else [r[key]]) if v is not None]
    return np.array(values, dtype=np.float64)


def _robust_slope(given: np.ndarray, new: np.ndarray) -> float:
    """Theil-Sen: the median of the slopes between every two objects (given speeds apart by
    more than 0.05 px per frame). 1: a difference in given speed carries over whole; 0: the
    continuation ignores it. An object the tracker loses for a frame reads as a jump of many
    pixels, which would swing a least-squares fit; it moves a median by one place."""
    i, j = np.triu_indices(len(given), 1)
    apart = np.abs(given[i] - given[j]) > 0.05
    if apart.sum() < 3:
        return float("nan")
    return float(np.median((new[i] - new[j])[apart] / (given[i] - given[j])[apart]))


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (Pearson's r of the ranks); nan where undefined."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")  # nothing measured: NaN, not a warning


def _p95(x: np.ndarray) -> float:
    return float(np.percentile(x, 95)) if len(x) else float("nan")


def _found(rows: list[dict], key: str) -> float:
    values = [v for r in rows for v in r[key]]
    return sum(v is not None for v in values) / max(1, len(values))


def summarize(mode: str, rows: list[dict]) -> dict[str, float]:
    """Means over scenes (accuracies) or over objects (errors, in pixels); `found`: the share
    of objects of the given frames that the detector finds at the same moment generated."""
    if mode == "i2v":
        start = _flat(rows, "start_error")
        return {
            "psnr_first": _mean(_flat(rows, "psnr_first")),
            "colour": _mean(_flat(rows, "colour")),
            "shape": _mean(_flat(rows, "shape")),
            "direction": _mean(_flat(rows, "direction")),
            "start_error_mean": _mean(start),
            "start_error_p95": _p95(start),
            "found": _found(rows, "start_error"),
            "flicker": _mean(_flat(rows, "flicker")),
        }
    if mode == "first-last":
        ends = _flat(rows, "end_error")
        return {
            "end_error_mean": _mean(ends),
            "end_error_p95": _p95(ends),
            "monotone": _mean(_flat(rows, "monotone")),
            "found": _found(rows, "end_error"),
        }
    if mode == "last":
        ends = _flat(rows, "end_error")
        return {
            "end_error_mean": _mean(ends),
            "end_error_p95": _p95(ends),
            "found": _found(rows, "end_error"),
            "colour": _mean(_flat(rows, "colour")),
            "shape": _mean(_flat(rows, "shape")),
            "direction": _mean(_flat(rows, "direction")),
            "flicker": _mean(_flat(rows, "flicker")),
        }
    seams = _flat(rows, "seam_ratio")
    given, new = _flat(rows, "speed_given"), _flat(rows, "speed_new")
    return {
        "direction": _mean(_flat(rows, "direction")),
        "seam_within_20pct": _mean((np.abs(seams - 1) <= 0.2).astype(float)),
        "seam_ratio_median": float(np.median(seams)) if len(seams) else float("nan"),
        "speed_within_10pct": _mean((np.abs(new / given - 1) <= 0.1).astype(float)),
        "speed_slope": _robust_slope(given, new),
        "speed_rank_correlation": _rank_correlation(given, new),
        "steps_even_20pct": _mean((np.abs(_flat(rows, "step_ratio") - 1) <= 0.2).astype(float)),
        "directions_measured": float(len(_flat(rows, "direction"))),
        "seams_measured": float(len(seams)),
        "speeds_measured": float(len(given)),
    }


def guidance_grid(
    pipe: Pipeline,
    text_scales: list[float],
    image_scales: list[float],
    cfg: ConditionSuite | None = None,
    gen: GenerateConfig | None = None,
    progress: bool = True,
    mode: str = "i2v",
) -> list[dict]:
    """Image to video (or another mode, e.g. "last": a keyframe alone) at every (text scale,
    image scale): one summary row each."""
    gen = gen or GenerateConfig()
    out = []
    for text_scale in text_scales:
        for image_scale in image_scales:
            g = replace(gen, text_scale=text_scale, image_scale=image_scale)
            summary = run_conditioning(pipe, mode, cfg, g, progress)["summary"]
            out.append({"text_scale": text_scale, "image_scale": image_scale, **summary})
    return out


def edit_row(generated: torch.Tensor, item: dict, fps: float) -> dict:
    """How a recolouring edit went: the share of new colours found, and per object the mean
    and largest distance (px) between where the edit put it and where the source had it."""
    (_, new_truth), old_truth = item["recoloured"], item["truth"]
    gen_tracks, src_tracks = tracks(generated, fps), tracks(item["video"], fps)
    errors = []
    for old, new, visible in zip(
        old_truth["objects"],
        new_truth["objects"],
        in_full_view(old_truth, *generated.shape[-2:]),
        strict=True,
    ):
        source, edited = src_tracks.get(old["colour"]), gen_tracks.get(new["colour"])
        if source is None:
            continue  # the detector misses the source object too (hidden behind another)
        # Only frames where the object is in full view: elsewhere its position from pixels is
        # the visible part's, which moves with the object in front.
        source = [p if v else None for p, v in zip(source, visible, strict=True)]
        if all(p is None for p in source):
            continue
        pairs = [_distance(a, b) for a, b in zip(source, edited or [None] * len(source), strict=True)]
        seen = [d for d in pairs if d is not None]
        found = len(seen) >= 0.8 * sum(p is not None for p in source)
        errors.append({"mean": float(np.mean(seen)) if seen else None, "max": max(seen) if found else None})
    colour = score(generated, new_truth)["colour"]
    return {"prompt": item["recoloured"][0], "colour": colour, "objects": errors}


def summarize_edits(rows: list[dict]) -> dict[str, float]:
    objects = [o for r in rows for o in r["objects"]]
    means = np.array([o["mean"] for o in objects if o["mean"] is not None])
    within = [o["max"] is not None and o["max"] <= 2.0 for o in objects]
    return {
        "colour": _mean(np.array([r["colour"] for r in rows])),
        "position_error_mean": _mean(means),
        "within_2px": _mean(np.array(within, dtype=float)),  # on every frame
        "mean_within_2px": _mean(np.array([o["mean"] is not None and o["max"] is not None and o["mean"] <= 2.0
                                           for o in objects], dtype=float)),  # fmt: skip
        "colour_and_within_2px": _mean(np.array([r["colour"] == 1 and all(
            o["max"] is not None and o["max"] <= 2.0 for o in r["objects"]) for r in rows], dtype=float)),
    }  # fmt: skip


def v2v_curve(
    pipe: Pipeline,
    strengths: list[float],
    cfg: ConditionSuite | None = None,
    gen: GenerateConfig | None = None,
    progress: bool = True,
    batch_size: int = 10,
    sharing: Sharing | None = SHARING,
) -> list[dict]:
    """Video-to-video (SDEdit) of every scene under its recoloured prompt at each strength,
    sharing the clip's attention under its own caption as `sharing` says (None: plain)."""
    cfg = cfg or ConditionSuite()
    gen = gen or GenerateConfig(frames=cfg.frames, height=cfg.size, width=cfg.size)
    scenes = suite_scenes(cfg)
    out = []
    for strength in strengths:
        rows = []
        for start in tqdm(range(0, len(scenes), batch_size), desc=f"v2v {strength}", disable=not progress):
            chunk = scenes[start : start + batch_size]
            clips = torch.stack([it["video"] for it in chunk])
            prompts = [it["recoloured"][0] for it in chunk]
            sources = [it["caption"] for it in chunk]
            videos = video_to_video(pipe, clips, prompts, replace(gen, seed=gen.seed + start), strength,
                                    source_prompts=sources, sharing=sharing)  # fmt: skip
            rows += [edit_row(v.cpu(), it, cfg.fps) for v, it in zip(videos, chunk, strict=True)]
        out.append({"strength": strength, **summarize_edits(rows)})
    return out


def inversion_edit(
    pipe: Pipeline,
    cfg: ConditionSuite | None = None,
    gen: GenerateConfig | None = None,
    inversion_scale: float = 1.0,
    progress: bool = True,
    batch_size: int = 10,
    sharing: Sharing | None = SHARING,
    strength: float = EDIT_STRENGTH,
) -> dict:
    """Invert every scene under its own caption, regenerate under the recoloured one (gen's
    text scale; `EDIT_TEXT_SCALE` is the edit's default)."""
    cfg = cfg or ConditionSuite()
    gen = gen or GenerateConfig(
        frames=cfg.frames, height=cfg.size, width=cfg.size, text_scale=EDIT_TEXT_SCALE
    )
    rows = []
    scenes = suite_scenes(cfg)
    for start in tqdm(range(0, len(scenes), batch_size), desc="inversion edit", disable=not progress):
        chunk = scenes[start : start + batch_size]
        clips = torch.stack([it["video"] for it in chunk])
        videos = edit(pipe, clips, [it["caption"] for it in chunk], [it["recoloured"][0] for it in chunk],
                      replace(gen, seed=gen.seed + start), inversion_scale, sharing, strength)  # fmt: skip
        rows += [edit_row(v.cpu(), it, cfg.fps) for v, it in zip(videos, chunk, strict=True)]
    return {"summary": summarize_edits(rows), "rows": rows}
