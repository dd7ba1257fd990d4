"""`eval report` with a tiny model: every number is there and finite, the page holds its
tables, plot and clips, and a second run reproduces the numbers exactly."""

import json
import math

import pytest
from click.testing import CliRunner

from filmstrip.cli import main
from filmstrip.errors import InputError
from filmstrip.eval.report import Networks, ReportConfig, build_report
from filmstrip.eval.report_page import COLUMNS, render_html
from filmstrip.pipelines.generate import load_pipeline

SMALL = dict(samples=4, frames=9, size=32, steps=2, examples=2)


def test_report_numbers_page_and_rerun(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = ReportConfig(**SMALL)
    assert cfg.fid_frames == (0, 4, 8) and cfg.scoring.fvd_frames == 9
    nets = Networks.load()
    numbers, clips = build_report(load_pipeline(tiny_bundle), cfg, nets, progress=False)
    rows = numbers["rows"]
    assert set(rows) == {"real", "vae", "model"}
    for row in rows.values():
        assert all(math.isfinite(row[key]) for key, *_ in COLUMNS)
    assert rows["real"]["physics"] == 1.0  # real clips obey the laws
    assert rows["real"]["fvd"] > 0 and rows["model"]["fvd"] > rows["real"]["fvd"]  # an untrained model
    assert clips["model"].shape == clips["real"].shape == (2, 3, 9, 32, 32)
    page = render_html(numbers, clips)
    assert page.count("<table>") == 2 and "image/png;base64" in page and "image/gif;base64" in page
    assert f"{rows['model']['fvd']:.1f}" in page

    cached = sorted((tmp_path / "cache" / "filmstrip" / "report").iterdir())
    assert len(cached) == 4  # the reference, the other real draw, the round trip, the model
    result = CliRunner().invoke(
        main, ["eval", "report", "-c", str(tiny_bundle), "--samples", "4", "--frames", "9", "--size", "32",
               "--steps", "2", "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "r.json").read_text())
    # The same videos hash to the same cache entries, and every number comes out the same.
    assert sorted((tmp_path / "cache" / "filmstrip" / "report").iterdir()) == cached
    assert again["rows"] == json.loads(json.dumps(rows)) and again["adherence"] == json.loads(
        json.dumps(numbers["adherence"])
    )
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_bad_report_settings_are_refused(tiny_bundle, tmp_path):
    with pytest.raises(InputError, match="even number"):
        ReportConfig(samples=5)
    with pytest.raises(InputError, match="at least 9 frames"):
        ReportConfig(frames=5)
    result = CliRunner().invoke(
        main, ["eval", "report", "-c", str(tiny_bundle), "-o", str(tmp_path / "r.pdf")]
    )
    assert result.exit_code == 2 and "name it .html" in result.output
