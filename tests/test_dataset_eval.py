"""`eval dataset`: a tiny model scored on a captioned folder of clips of mixed sizes."""

import json
import math

import pytest
import torch
from click.testing import CliRunner
from conftest import smooth_video

from filmstrip.cli import main
from filmstrip.errors import InputError
from filmstrip.eval.dataset_eval import DatasetEvalConfig, evaluate_on_dataset, fit_frame
from filmstrip.io import write_video
from filmstrip.pipelines.generate import load_pipeline


def _folder(root, captions=True, sizes=((48, 64), (40, 40), (64, 48), (36, 64))):
    root.mkdir()
    for k, (h, w) in enumerate(sizes):
        write_video(root / f"clip{k}.mp4", smooth_video(12, h, w, seed=k).transpose(3, 0, 1, 2), fps=8)
        if captions:
            (root / f"clip{k}.txt").write_text(f"a texture drifting, take {k}")
    return root


def test_fit_frame_keeps_the_middle():
    video = torch.arange(2 * 64, dtype=torch.float32).reshape(1, 1, 2, 64).expand(3, 2, 2, 64)
    out = fit_frame(video, 2, 2)
    assert out.shape == (3, 2, 2, 2)
    assert out[0, 0, 0, 0] < out[0, 0, 0, 1]  # left stays left
    assert fit_frame(video, 2, 4).shape == (3, 2, 2, 4)


def test_a_tiny_model_on_a_captioned_folder(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the CLI run below reuses its analyses
    data = _folder(tmp_path / "clips")
    rows = evaluate_on_dataset(
        load_pipeline(tiny_bundle),
        DatasetEvalConfig(f"folder:{data}", clips=4, frames=9, size=32, steps=2),
        progress=False,
    )
    assert set(rows) == {"model"}  # a folder has no train split of its own
    assert rows["model"]["fvd"] > 0 and all(math.isfinite(v) for v in rows["model"].values())
    assert "physics" not in rows["model"]  # the probe knows only the shapes world

    result = CliRunner().invoke(
        main, ["eval", "dataset", "-c", str(tiny_bundle), "--data", f"folder:{data}", "--clips", "4", "--frames",
               "9", "--size", "32", "--steps", "2", "--json", str(tmp_path / "d.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "d.json").read_text())["rows"]["model"]["fvd"] == pytest.approx(
        rows["model"]["fvd"]
    )
    wide = CliRunner().invoke(
        main, ["eval", "dataset", "-c", str(tiny_bundle), "--data", f"folder:{data}", "--clips", "4", "--frames",
               "9", "--size", "48x32", "--steps", "2", "--json", str(tmp_path / "w.json")],
    )  # fmt: skip
    assert wide.exit_code == 0, wide.output
    saved = json.loads((tmp_path / "w.json").read_text())["config"]
    assert (saved["size"], saved["width"]) == (32, 48)


def test_folders_without_captions_or_with_too_few_clips_are_refused(tiny_bundle, tmp_path):
    pipe = load_pipeline(tiny_bundle)
    bare = _folder(tmp_path / "bare", captions=False)
    with pytest.raises(InputError, match="no clip has a caption"):
        evaluate_on_dataset(
            pipe, DatasetEvalConfig(f"folder:{bare}", clips=4, frames=9, size=32), progress=False
        )
    with pytest.raises(InputError, match="fewer than the 8 asked for"):
        evaluate_on_dataset(
            pipe, DatasetEvalConfig(f"folder:{bare}", clips=8, frames=9, size=32), progress=False
        )
