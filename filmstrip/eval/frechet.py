"""The Fréchet distance between Gaussians fitted to two sets of features (FVD, FID):

    FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))

computed in float64. tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of
S_a^(1/2) S_b S_a^(1/2), a symmetric positive semi-definite matrix: two eigendecompositions,
and no general matrix square root, whose round-off gives complex parts (scipy's sqrtm, which
much FID and FVD code uses, does).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from tqdm import tqdm

from filmstrip.errors import FilmstripWarning, InputError


def gaussian_stats(features_nd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), float64."""
    x = features_nd.double()
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"a Fréchet distance needs at least 2 feature vectors, got {tuple(x.shape)}")
    return x.mean(0), torch.cov(x.T)


def warn_small_sets(counts: tuple[int, int], dim: int, name: str, unit: str) -> None:
    """Say when a set is smaller than the features compared: the fitted covariance is then
    rank-deficient, and the distance is biased upward by an amount that shrinks with the set's
    size (Chong and Forsyth 2020), so only numbers from sets of equal size compare."""
    if min(counts) < dim:
        warnings.warn(
            f"{name} from {counts[0]} and {counts[1]} {unit}, fewer than the {dim} features it compares: "
            f"the number is biased upward by an amount that depends on the set sizes; compare only "
            f"numbers from sets of the same sizes (papers use 2,048 or more)",
            FilmstripWarning,
            stacklevel=2,
        )


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(m)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(
    mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor
) -> float:
    """Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b), in float64."""
    mu_a, cov_a, mu_b, cov_b = (t.double() for t in (mu_a, cov_a, mu_b, cov_b))
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return float(distance.clamp_min(0))


@torch.no_grad()
def collect_features(
    batches: Iterable[torch.Tensor],
    embed: Callable[[torch.Tensor], torch.Tensor],
    unit: str,
    progress: bool = False,
    total: int | None = None,
) -> torch.Tensor:
    """(N, D) float64 features `embed(batch)` of every batch, with a progress bar counting
    `unit`s; one clear error when there is nothing to embed."""
    out = []
    with tqdm(total=total, disable=not progress, unit=unit) as bar:
        for batch in batches:
            out.append(embed(batch).double().cpu())
            bar.update(batch.shape[0])
    if not out:
        raise InputError(f"no {unit}s to compute features of")
    return torch.cat(out)
