"""`data prepare`: cuts split, filters drop with their reasons, captions carried, resumable."""

import json

import numpy as np
from click.testing import CliRunner
from conftest import smooth_video

from filmstrip.cli import main
from filmstrip.data import build_dataset
from filmstrip.data.prepare import PrepareConfig, pieces, prepare, read_manifest
from filmstrip.io import probe, write_video


def _write(path, frames_thw3, fps=10):
    return write_video(path, frames_thw3.transpose(3, 0, 1, 2), fps=fps)


def _source(root):
    root.mkdir()
    shots = [smooth_video(n, 72, 128, seed=k) for k, n in enumerate((14, 22, 16))]  # cuts at 14 and 36
    _write(root / "joined.mp4", np.concatenate(shots))
    (root / "joined.txt").write_text("three shots of drifting texture")
    still = np.repeat(smooth_video(1, 72, 128, seed=9), 15, axis=0)
    _write(root / "still.mp4", still)
    _write(root / "dark.mp4", smooth_video(15, 72, 128, seed=3) // 20)
    _write(root / "short.mp4", smooth_video(6, 72, 128, seed=4))
    (root / "sub").mkdir()
    _write(root / "sub" / "tiny.mp4", smooth_video(15, 32, 32, seed=5))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    (root / "captions.jsonl").write_text(
        json.dumps({"file": "still.mp4", "caption": "a still texture"}) + "\n"
    )
    return root


def test_pieces_follow_cuts_and_split_long_shots():
    assert pieces(30, [10], fps=10, max_seconds=10) == [(0, 10), (10, 30)]
    assert pieces(30, [], fps=10, max_seconds=1.5) == [(0, 15), (15, 30)]


def test_prepare_a_folder_then_resume(tmp_path):
    src = _source(tmp_path / "src")
    out = tmp_path / "out"
    cfg = PrepareConfig(area=64 * 112)
    summary = prepare(src, out, cfg, progress=False)
    assert summary.sources == 6 and summary.skipped_done == 0 and len(summary.unreadable) == 1
    assert summary.kept == 3  # the three shots of joined.mp4
    assert summary.dropped == {"too static": 1, "too dark": 1, "too short": 1, "too small": 1}
    rows = read_manifest(out)
    assert [r["frames"] for r in rows] == [14, 22, 16]
    assert {r["caption"] for r in rows} == {"three shots of drifting texture"}
    for r in rows:
        info = probe(out / r["file"])
        assert (info.height, info.width) == (r["height"], r["width"]) and info.num_frames == r["frames"]
        assert r["motion"] > cfg.min_motion
    assert rows[1]["start"] == 1.4  # the second shot starts at frame 14 at 10 fps
    data = build_dataset(f"folder:{out / 'clips'}", num_frames=8, height=64, width=112)
    assert len(data) == 3 and data[0]["caption"] == "three shots of drifting texture"

    mtimes = {p: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    again = prepare(src, out, cfg, progress=False)
    assert again.skipped_done == 6 and again.kept == 3 and again.dropped == summary.dropped
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == mtimes  # nothing redone
    assert read_manifest(out) == rows


def test_prepare_command(tmp_path):
    src = _source(tmp_path / "src")
    result = CliRunner().invoke(main, ["data", "prepare", str(src), str(tmp_path / "out"), "--size", "80"])
    assert result.exit_code == 0, result.output
    assert "3 clips kept, 4 dropped" in result.output and "1 unreadable" in result.output
    result = CliRunner().invoke(main, ["data", "prepare", str(src), str(src / "inside")])
    assert result.exit_code == 1 and "must not lie inside" in result.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    result = CliRunner().invoke(main, ["data", "prepare", str(tmp_path / "empty"), str(tmp_path / "out2")])
    assert result.exit_code == 1 and "no videos in this folder or below it" in result.output
    assert not (tmp_path / "out2").exists()
