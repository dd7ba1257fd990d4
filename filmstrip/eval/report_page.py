"""The report as one self-contained HTML page: tables, matplotlib plots as embedded PNGs, and
the sample clips as an embedded GIF beside real clips of the same prompts."""

from __future__ import annotations

import base64
import html
import io
import tempfile
from pathlib import Path

import torch

from filmstrip.errors import InputError
from filmstrip.eval.physics import PARTS
from filmstrip.io.writer import write_video
from filmstrip.viz import video_grid

ROWS = {"real": "real clips (another draw)", "vae": "VAE round trip", "model": "model"}
COLUMNS = [  # key, heading, format, which way is better
    ("fvd", "FVD", "{:.1f}", "lower"),
    ("fid", "FID", "{:.2f}", "lower"),
    ("step_lpips", "LPIPS t→t+1", "{:.4f}", "like real"),
    ("subject_consistency", "subject consistency", "{:.4f}", "higher"),
    ("background_consistency", "background consistency", "{:.4f}", "higher"),
    ("motion_smoothness", "motion smoothness", "{:.4f}", "higher"),
    ("warping_error", "warping error", "{:.2f}", "lower"),
    ("flicker", "flicker", "{:.2f}", "lower"),
    ("motion", "motion px/frame", "{:.2f}", "like real"),
    ("dynamic", "dynamic degree", "{:.1%}", "like real"),
    ("physics", "physics score", "{:.1%}", "higher"),
    ("physics_passed", "physics: clips passing", "{:.1%}", "higher"),
]
ADHERENCE = ("colour", "shape", "direction", "count", "consistency", "swapped")


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plots(numbers: dict) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "the report's plots need matplotlib: pip install -e '.[report]' (make test installs it)"
        ) from None
    rows = numbers["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    names = [ROWS[r] for r in rows]
    colours = ["#888", "#59a", "#d73"]
    for ax, key, title in (
        (axes[0], "fvd", "FVD vs the prompts' real clips"),
        (axes[1], "fid", "FID vs the prompts' real clips"),
    ):
        ax.bar(names, [rows[r][key] for r in rows], color=colours)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    x = range(len(PARTS))
    for i, r in enumerate(rows):
        axes[2].bar(
            [k + 0.27 * (i - 1) for k in x],
            [rows[r][f"physics_{p}"] for p in PARTS],
            0.27,
            label=ROWS[r],
            color=colours[i],
        )
    axes[2].set_xticks(list(x), [p.replace("_", " ") for p in PARTS], fontsize=8, rotation=20)
    axes[2].set_ylim(0, 1.05)
    axes[2].set_title("physics: share of clips whose objects all pass", fontsize=10)
    axes[2].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3)
    fig.tight_layout()
    out = _png(fig)
    plt.close(fig)
    return out


def _gif(clips: dict, fps: float = 8.0) -> str:
    videos = list(clips["model"]) + list(clips["real"])
    captions = [f"model: {p}" for p in clips["prompts"]] + [f"real: {p}" for p in clips["prompts"]]
    grid = video_grid(videos, captions, columns=len(clips["prompts"]), tile=(128, 128), caption_lines=6)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "samples.gif", torch.from_numpy(grid), fps)
        data = path.read_bytes()
    return f'<img src="data:image/gif;base64,{base64.b64encode(data).decode()}">'


def render_html(numbers: dict, clips: dict) -> str:
    cfg, rows, adh = numbers["config"], numbers["rows"], numbers["adherence"]
    main = _table(
        ["set"] + [c[1] for c in COLUMNS],
        [[ROWS[r]] + [fmt.format(rows[r][k]) for k, _, fmt, _ in COLUMNS] for r in rows],
    )
    better = ", ".join(f"{h}: {b}" for _, h, _, b in COLUMNS)
    adherence = _table(
        ["prompts"] + list(ADHERENCE),
        [
            [label] + [f"{adh[part][k]:.1%}" for k in ADHERENCE]
            for part, label in (("seen", "seen in training"), ("held_out", "held-out combinations"))
            if adh[part]
        ],  # fmt: skip
    )
    times = numbers["times"]
    setting = (
        f"{cfg['samples']} prompts (half seen in training, half held out), one video each, seeds from {cfg['seed']}; "
        f"{cfg['steps']} Euler steps, text guidance {cfg['text_scale']:g}; {cfg['frames']} frames at "
        f"{cfg['size']}x{cfg['size']}. FVD on the first {cfg['fvd_frames']} frames, FID and subject consistency on "
        f"frames {', '.join(map(str, cfg['fid_frames']))} of each clip."
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>filmstrip report: {html.escape(numbers["model"])}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}
td:not(:first-child){{text-align:right}}p.note{{font-size:13px;color:#555}}</style></head><body>
<h1>filmstrip report: {html.escape(numbers["model"])}</h1>
<p>{numbers["parameters"]:,} DiT parameters. {html.escape(setting)}</p>
<h2>Distribution, temporal quality and physics</h2>
{main}
<p class="note">Every set is scored against the real clips of the prompts' own scenes. "Real clips (another
draw)" is the floor each distance has at this sample count; the VAE round trip is that draw through the
model's autoencoder (PSNR {rows["vae"]["psnr"]:.2f} dB, paired ST-LPIPS {rows["vae"]["lpips"]:.4f}).
Better: {html.escape(better)}. Networks: I3D Kinetics-400 (FVD), TF-FID Inception-v3 (FID, subject
consistency), shift-tolerant LPIPS AlexNet, OpenCV DIS optical flow.</p>
{_plots(numbers)}
<h2>Prompt adherence (from pixels)</h2>
{adherence}
<h2>Samples beside real clips of the same prompts</h2>
{_gif(clips, 8.0)}
<h2>Time (varies run to run; every other number on this page does not)</h2>
<p>{times["generate_s_per_clip"]:.2f} s per generated clip; scoring {times["score_s"]:.0f} s; whole report {times["total_s"]:.0f} s.</p>
</body></html>
"""
