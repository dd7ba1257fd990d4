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
    info = CliRunner().invoke(main, ["info", str(tmp_path / "out")]).output
    assert (
        "out: 3 clips prepared from 1 video, 3 captioned" in info
        and "train on it with --data folder:" in info
    )
    result = CliRunner().invoke(main, ["data", "prepare", str(src), str(src / "inside")])
    assert result.exit_code == 1 and "must not lie inside" in result.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    result = CliRunner().invoke(main, ["data", "prepare", str(tmp_path / "empty"), str(tmp_path / "out2")])
    assert result.exit_code == 1 and "no videos in this folder or below it" in result.output
    assert not (tmp_path / "out2").exists()


def test_captions_given_later_are_carried_and_clips_of_other_settings_removed(tmp_path):
    """Found by preparing a folder first and captioning it after: the re-run skipped every
    video and its clips kept no caption. And a re-run with other settings left the clips it now
    drops in OUT/clips, where `folder:` trained on them."""
    src = _source(tmp_path / "src")
    out = tmp_path / "out"
    cfg = PrepareConfig(area=64 * 112)
    prepare(src, out, cfg, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.mp4")}
    (src / "joined.txt").write_text("three shots, captioned again")
    again = prepare(src, out, cfg, progress=False)
    assert again.skipped_done == 6 and again.recaptioned == 1 and "1 with new captions" in again.lines()[0]
    assert {r["caption"] for r in read_manifest(out)} == {"three shots, captioned again"}
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").glob("*.mp4")} == mtimes  # not re-encoded
    assert build_dataset(f"folder:{out / 'clips'}", num_frames=8, height=64, width=112)[0]["caption"] == (
        "three shots, captioned again"
    )
    (src / "joined.txt").unlink()
    uncaptioned = prepare(src, out, cfg, progress=False)
    assert not list((out / "clips").glob("*.txt")) and uncaptioned.uncaptioned == 3
    assert "3 of 3 clips have no caption" in "\n".join(uncaptioned.lines())
    # Other settings: the still video kept, then dropped again; its clip goes with it.
    prepare(src, out, PrepareConfig(area=64 * 112, min_motion=0.0), progress=False)
    assert (out / "clips" / "still_000.mp4").exists()
    prepare(src, out, cfg, progress=False)
    assert sorted(p.name for p in (out / "clips").glob("*.mp4")) == [
        r["file"][6:] for r in read_manifest(out)
    ]


def test_a_video_without_a_bucket_says_which_tolerance_keeps_it(tmp_path):
    (tmp_path / "src").mkdir()
    _write(tmp_path / "src" / "scope.mp4", smooth_video(15, 64, 160, seed=1))  # 2.5:1, past 16:9
    summary = prepare(tmp_path / "src", tmp_path / "out", PrepareConfig(area=64 * 112), progress=False)
    assert summary.kept == 0 and summary.dropped == {"no bucket": 1}
    (note,) = summary.notes
    assert note.startswith("scope.mp4: no bucket, 160x64 would lose 30% of each frame"), note
    tolerance = float(note.split("--tolerance ")[1].split()[0])
    kept = prepare(
        tmp_path / "src", tmp_path / "out", PrepareConfig(area=64 * 112, tolerance=tolerance), progress=False
    )
    assert kept.kept == 1 and not kept.notes
