"""Rectified flow and its samplers, checked against closed forms."""

import math

import pytest
import torch

from filmstrip.diffusion.flow import (
    FlowConfig,
    add_noise,
    loss_by_bin,
    per_frame_loss,
    sample_t,
    shift_t,
    timestep_shift,
    velocity_target,
)
from filmstrip.diffusion.guidance import combine, guidance_plan
from filmstrip.diffusion.sampling import sample, schedule, step


def gaussian_velocity(mu: float, sigma: float):
    """Exact rectified-flow velocity when data ~ N(mu, sigma^2) per element: the flow moves
    quantiles, x(t) = m(t) + s(t) z with m = (1 - t) mu, s^2 = (1 - t)^2 sigma^2 + t^2."""

    def v(x, t_bt):
        t = t_bt[:, None, :, None, None].double()
        m, s = (1 - t) * mu, torch.sqrt((1 - t) ** 2 * sigma**2 + t**2)
        ds = (t - (1 - t) * sigma**2) / s
        return -mu + ds * (x - m) / s

    return v


@pytest.mark.parametrize("solver, steps, tol, order", [("euler", 200, 2e-2, 1), ("heun", 50, 1e-3, 2)])
def test_samplers_integrate_a_known_flow(solver, steps, tol, order):
    mu, sigma = 0.7, 0.3
    x1 = torch.randn(2, 3, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = mu + sigma * x1  # the flow maps noise quantile z to data quantile mu + sigma z

    def error(n):
        return float(
            (sample(gaussian_velocity(mu, sigma), x1, schedule(n, 4).double(), solver=solver) - expected)
            .abs()
            .max()
        )

    assert error(steps) < tol
    # Doubling the steps divides the error by about 2**order.
    assert 2 ** (order - 0.5) < error(steps // 2) / error(steps) < 2 ** (order + 0.5)


def test_heun_converges_faster_than_euler():
    v = gaussian_velocity(-0.5, 2.0)
    x1 = torch.randn(1, 1, 2, 4, 4, dtype=torch.float64)
    exact = -0.5 + 2.0 * x1
    err = {
        s: float((sample(v, x1, schedule(10, 2, shift=3.0).double(), solver=s) - exact).abs().max())
        for s in ("euler", "heun")
    }
    assert err["heun"] < err["euler"] / 5


def test_straight_paths_are_exact_in_one_euler_step():
    """For a single data point the flow is a straight line: one step lands exactly on it."""
    a = torch.randn(1, 2, 3, 4, 4)
    noise = torch.randn_like(a)
    x1 = add_noise(a, noise, torch.ones(1, 3))
    v = velocity_target(a, noise)
    assert torch.allclose(step(x1, v, torch.ones(3), torch.zeros(3)), a, atol=1e-6)


def test_schedule_shape_and_shift():
    s = schedule(8, 5, shift=3.0)
    assert s.shape == (9, 5) and torch.all(s[0] == 1) and torch.all(s[-1] == 0)
    assert torch.all(s[1:] < s[:-1])
    # Shift moves every intermediate level towards noise.
    assert torch.all(s[1:-1] > schedule(8, 5)[1:-1])
    assert shift_t(torch.tensor(0.5), 3.0) == pytest.approx(0.75)
    assert timestep_shift(64, FlowConfig()) == 1.0
    assert timestep_shift(64 * 4, FlowConfig()) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least one"):
        schedule(0, 3)


def test_pyramid_schedule_lags_later_frames():
    s = schedule(10, 5, shift=2.0, lag=1.0)
    assert s.shape == (11, 5) and torch.all(s[0] == 1) and torch.all(s[-1] == 0)
    assert torch.all(s[1:] <= s[:-1])  # no frame ever gets noisier
    assert torch.all(s[:, 1:] >= s[:, :-1])  # a later frame is never cleaner than an earlier one
    # With lag 1 the first frame is clean half-way through, while the last has not started.
    assert s[5, 0] == 0 and s[5, -1] == 1
    assert torch.equal(schedule(10, 5, shift=2.0, lag=0.0), schedule(10, 5, shift=2.0))
    assert torch.equal(schedule(4, 1, lag=1.0), schedule(4, 1))  # one frame: nothing to lag
    with pytest.raises(ValueError, match="lag"):
        schedule(4, 3, lag=-0.5)


def test_per_frame_noise_levels():
    x0, noise = torch.zeros(1, 1, 3, 2, 2), torch.ones(1, 1, 3, 2, 2)
    xt = add_noise(x0, noise, torch.tensor([[0.0, 0.5, 1.0]]))
    assert xt[0, 0, :, 0, 0].tolist() == [0.0, 0.5, 1.0]
    # A schedule whose first column stays 0 keeps that frame clean (image conditioning).
    sched = schedule(4, 3)
    sched[:, 0] = 0
    out = sample(lambda x, t: torch.ones_like(x), torch.zeros(1, 1, 3, 2, 2), sched)
    assert torch.all(out[:, :, 0] == 0) and torch.all(out[:, :, 1:] == -1)


def test_timestep_sampling_is_seeded_and_logit_normal():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = sample_t((4000,), 1.0, FlowConfig(), g1), sample_t((4000,), 1.0, FlowConfig(), g2)
    assert torch.equal(a, b)
    logits = torch.log(a / (1 - a))
    assert abs(float(logits.mean())) < 0.1 and abs(float(logits.std()) - 1) < 0.1
    shifted = sample_t((4000,), 3.0, FlowConfig(), torch.Generator().manual_seed(3))
    assert float(shifted.mean()) > float(a.mean()) + 0.15


def test_guidance_scale_one_is_the_conditional_prediction():
    # float64 so the comparison is about the formula, not about rounding near zero.
    g = torch.Generator().manual_seed(0)
    u, c, i = torch.randn(3, 2, 4, 3, 1, 1, generator=g, dtype=torch.float64).unbind(0)

    def run(levels, scales):
        base, runs = guidance_plan(scales)
        return combine(dict(enumerate(levels)), base, runs)

    assert torch.equal(run([u, c], [1.0]), c)
    assert torch.allclose(run([u, i, c], [1.0, 1.0]), c, atol=1e-12)
    assert torch.allclose(run([u, c], [0.0]), u, atol=1e-12)
    assert torch.equal(run([u, c], [3.0]), u + 3 * (c - u))  # the formula text-to-video shipped with
    # Separate image and text scales (InstructPix2Pix): v_u + s_i (v_i - v_u) + s_t (v_c - v_i).
    assert torch.allclose(run([u, i, c], [1.5, 4.0]), u + 1.5 * (i - u) + 4.0 * (c - i), atol=1e-12)


@pytest.mark.parametrize(
    "scales, needed",
    [
        ([4.0], [0, 1]),
        ([1.0], [1]),  # scale 1 skips the unconditional branch
        ([1.0, 1.0], [2]),
        ([1.0, 4.0], [1, 2]),  # image kept, text guided
        ([3.0, 3.0], [0, 2]),  # equal scales: the middle level cancels
        ([2.0, 1.0], [0, 1, 2]),
        ([], [0]),
    ],
)
def test_guidance_runs_only_the_levels_it_needs_in_one_batch(scales, needed):
    from filmstrip.diffusion.guidance import guided
    from filmstrip.models.conditioning import Conditioning

    ids = [torch.full((2, 3, 1), float(k), dtype=torch.float64) for k in range(len(scales) + 1)]
    levels = [Conditioning(vectors={"id": i}) for i in ids]
    calls = []

    def model(x, t, cond):
        calls.append(cond.vectors["id"][:, 0, 0].tolist())
        # A prediction that depends on the level: level k predicts (k + 1) * x.
        return x * (cond.vectors["id"][:, :1, :, None, None] + 1)

    x, t = torch.randn(2, 4, 3, 2, 2, dtype=torch.float64), torch.rand(2, 3)
    v = guided(model, levels, scales)(x, t)
    assert calls == [[float(k) for k in needed for _ in range(2)]]  # one forward, B rows per level
    expected = x.clone()  # v_0 + sum s_i (v_i - v_{i-1}) with v_k = (k + 1) x
    for s in scales:
        expected = expected + s * x
    torch.testing.assert_close(v, expected)


def test_loss_by_bin():
    t = torch.tensor([[0.1, 0.3], [0.6, 0.95]])
    losses = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    bins = loss_by_bin(t, losses, bins=4)
    assert bins == {"loss_t0.00": 1.0, "loss_t0.25": 2.0, "loss_t0.50": 3.0, "loss_t0.75": 4.0}
    assert math.isfinite(sum(bins.values()))


def test_weighted_frame_loss_and_focus_at_latent_resolution():
    """The focus-weighted flow loss against a float64 hand computation; equal weights give the
    plain loss; a focus mask maps onto the latent pixels that encode it (causal VAE: latent
    frame 0 is frame 0, latent frame k frames 4k-3..4k; 8x8 pixels per latent pixel)."""
    from filmstrip.data.latents import latent_focus
    from filmstrip.errors import InputError
    from filmstrip.train.t2v_task import T2VConfig

    g = torch.Generator().manual_seed(0)
    v, target = torch.randn(2, 3, 4, 5, 6, generator=g), torch.randn(2, 3, 4, 5, 6, generator=g)
    weight = torch.rand(2, 4, 5, 6, generator=g) + 0.1
    error = (v.double() - target.double()).square().mean(dim=1)
    expected = (error * weight.double()).sum(dim=(2, 3)) / weight.double().sum(dim=(2, 3))
    torch.testing.assert_close(per_frame_loss(v, target, weight).double(), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(
        per_frame_loss(v, target, torch.full_like(weight, 3.0)), per_frame_loss(v, target)
    )

    mask = torch.zeros(1, 1, 17, 32, 48)
    mask[0, 0, 0, 3, 40] = 1.0  # frame 0 -> latent frame 0, latent pixel (0, 5)
    mask[0, 0, 5, 9, 17] = 0.5  # frame 5 -> latent frame 2, latent pixel (1, 2)
    mask[0, 0, 16, 31, 0] = 0.25  # the last frame -> latent frame 4, latent pixel (3, 0)
    focus = latent_focus(mask, temporal=4, spatial=8)
    expected = torch.zeros(1, 5, 4, 6)
    expected[0, 0, 0, 5], expected[0, 2, 1, 2], expected[0, 4, 3, 0] = 1.0, 0.5, 0.25
    assert torch.equal(focus, expected)
    with pytest.raises(InputError, match="does not map onto latents"):
        latent_focus(torch.zeros(1, 1, 16, 32, 48), temporal=4, spatial=8)
    for bad in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="focus_weight must be a positive number"):
            T2VConfig(focus_weight=bad)
