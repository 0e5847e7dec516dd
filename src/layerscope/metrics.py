"""Representation-quality metrics of one layer's activations.

Pure functions over arrays (numpy or torch), computed in float64 with torch on
the GPU when there is one (on the CPU, products and eigenvalues go through
numpy's BLAS/LAPACK), returning Python floats or numpy arrays. The maths,
the preprocessing defaults and the faults of the original research code that
these functions avoid are in docs/metrics.md.

Every entropy is the matrix-based Renyi entropy of order ``alpha`` of a Gram
spectrum, in nats:

    S_alpha = log(sum_i p_i ** alpha) / (1 - alpha),   p_i = lambda_i / sum_j lambda_j

and ``alpha = 1`` is the von Neumann / Shannon form ``-sum_i p_i log p_i``.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = [
    "PREPROCESS_DEFAULTS",
    "CurvatureResult",
    "curvature",
    "dataset_entropy",
    "dime",
    "effective_rank",
    "entropy_variants",
    "infonce",
    "lidar",
    "matrix_entropy",
    "preprocess",
    "prompt_entropy",
]

# Row preprocessing the workflow applies before each metric (docs/metrics.md):
# the research code centred and L2-normalised every prompt's token matrix
# before every metric; layerscope keeps that, centring token metrics within
# each prompt and pooled metrics across texts.
PREPROCESS_DEFAULTS = {
    "prompt_entropy": {"center": True, "normalize": True},
    "curvature": {"center": True, "normalize": True},
    "dataset_entropy": {"center": True, "normalize": True},
    "effective_rank": {"center": True, "normalize": True},
    "infonce": {"center": True, "normalize": True},
    "dime": {"center": True, "normalize": True},
    "lidar": {"center": True, "normalize": True},
}

# Float64 elements of one chunk of batched work: cache-sized on the CPU, where
# passes over memory dominate, large on the GPU, where launches do.
_CPU_CHUNK_ELEMENTS = 2**18
_GPU_CHUNK_ELEMENTS = 2**26
_EPS = torch.finfo(torch.float64).eps


class CurvatureResult(NamedTuple):
    """Per-prompt curvature, as returned by :func:`curvature`.

    Attributes
    ----------
    values : (n_prompts,) ndarray
        Mean turning angle of each prompt in radians, NaN where skipped.
    n_skipped : int
        Prompts with no angle to average: fewer than 3 tokens, or no two
        consecutive steps of nonzero length.
    """

    values: np.ndarray
    n_skipped: int


# ---------------------------------------------------------------- validation


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _chunk_elements(device: torch.device) -> int:
    return _GPU_CHUNK_ELEMENTS if device.type == "cuda" else _CPU_CHUNK_ELEMENTS


def _as_tensor(x, name: str, ndim: int, shape_doc: str, keep_dtype=False):
    """Array-like -> tensor on the compute device (float64 unless keep_dtype)."""
    if isinstance(x, torch.Tensor):
        tensor = x.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{name} must be a numeric array {shape_doc}, got {type(x).__name__}"
            ) from err
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name} must be real numbers, got dtype {tensor.dtype}")
    if tensor.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D {shape_doc}, got shape {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty, got shape {tuple(tensor.shape)}")

    keep = keep_dtype and tensor.is_floating_point()
    tensor = tensor.to(device=_device(), dtype=tensor.dtype if keep else torch.float64)
    if not _all_finite(tensor):
        raise ValueError(f"{name} contains NaN or Inf")
    return tensor


def _all_finite(tensor: torch.Tensor) -> bool:
    # A finite sum proves every entry finite without a full-size mask; an
    # infinite one may be overflow, so only then is every entry checked.
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _check_alpha(alpha) -> float:
    if not _is_real(alpha) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    return float(alpha)


def _check_positive(value, name: str) -> float:
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def _check_int(value, name: str, minimum: int | None = None) -> int:
    try:
        number = operator.index(value)
    except TypeError as err:
        raise ValueError(f"{name} must be an integer, got {value!r}") from err
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def _check_offsets(offsets, n_tokens: int) -> np.ndarray:
    """Offsets (n_prompts + 1,): 0, strictly increasing, ending at n_tokens."""
    if isinstance(offsets, torch.Tensor):
        offsets = offsets.detach().cpu().numpy()
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.size < 2:
        raise ValueError(
            "offsets must be 1-D (n_prompts + 1,) with at least 2 entries, "
            f"got shape {offsets.shape}"
        )
    if not np.issubdtype(offsets.dtype, np.integer):
        raise ValueError(f"offsets must be integers, got dtype {offsets.dtype}")
    if offsets[0] != 0:
        raise ValueError(f"offsets must start at 0, got {offsets[0]}")
    if np.any(np.diff(offsets) <= 0):
        raise ValueError(
            "offsets must be strictly increasing (every prompt needs a token)"
        )
    if offsets[-1] != n_tokens:
        raise ValueError(f"offsets must end at n_tokens={n_tokens}, got {offsets[-1]}")
    return offsets.astype(np.int64)


def _check_min_rows(tensor: torch.Tensor, name: str, minimum: int = 2) -> None:
    if tensor.shape[0] < minimum:
        raise ValueError(
            f"{name} needs at least {minimum} samples (rows), got {tensor.shape[0]}"
        )


def _check_views(view_a, view_b) -> tuple[torch.Tensor, torch.Tensor]:
    a = _as_tensor(view_a, "view_a", 2, "(n, dim)")
    b = _as_tensor(view_b, "view_b", 2, "(n, dim)")
    if a.shape != b.shape:
        raise ValueError(
            f"view_b must have the shape of view_a {tuple(a.shape)}, "
            f"got {tuple(b.shape)}"
        )
    _check_min_rows(a, "view_a")
    return a, b


# ------------------------------------------------------------------ spectra


# On the CPU, products and symmetric eigenvalues go through numpy: its
# OpenBLAS/LAPACK took about half torch's time for both here (float64, one
# thread: a 1000 x 1000 eigvalsh 0.06 s against 0.10 s, X^T X of 16000 x 576
# 0.11 s against 0.21 s, since numpy spots X^T X and halves the work).
# Tensors and arrays share memory, so the hand-over copies nothing.
#
# OpenBLAS starts threads of its own, and torch's OpenMP threads keep spinning
# on the cores for a while after each op: with two of each on two cores,
# prompt entropy ran 3 times and dataset entropy 25 times slower than with one
# torch thread. So every public function gives torch one thread on the CPU
# while it runs (``_one_torch_thread``); BLAS keeps the threads it was given
# (threadpoolctl sets them).


def _one_torch_thread(function):
    """Run ``function`` with torch on one thread when computing on the CPU."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        if before == 1 or _device().type != "cpu":
            return function(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b, batched like torch.matmul; through numpy's BLAS on the CPU."""
    if a.device.type != "cpu":
        return a @ b
    return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))


def _eigvalsh(matrices: torch.Tensor) -> torch.Tensor:
    """(..., m, m) symmetric -> (..., m) ascending eigenvalues; numpy on the CPU."""
    if matrices.device.type != "cpu":
        return torch.linalg.eigvalsh(matrices)
    return torch.from_numpy(np.linalg.eigvalsh(matrices.numpy()))


def _gram(x: torch.Tensor) -> torch.Tensor:
    """(..., n, d) -> the smaller Gram, (..., n, n) or (..., d, d).

    Z Z^T and Z^T Z share their nonzero eigenvalues, so the entropy does not
    depend on which one is decomposed.
    """
    n, d = x.shape[-2:]
    return _matmul(x, x.mT) if n <= d else _matmul(x.mT, x)


def _eigenvalues(gram: torch.Tensor) -> torch.Tensor:
    """(..., m, m) PSD -> (..., m) eigenvalues, round-off around zero set to 0."""
    lam = _eigvalsh(gram)
    tol = gram.shape[-1] * _EPS * lam[..., -1:].clamp_min(0)
    return torch.where(lam > tol, lam, torch.zeros_like(lam))


def _renyi(weights: torch.Tensor, alpha: float) -> torch.Tensor:
    """(..., m) nonnegative weights -> (...,) Renyi entropy of weights / sum."""
    p = weights / weights.sum(-1, keepdim=True)
    positive = p > 0
    log_p = torch.log(torch.where(positive, p, torch.ones_like(p)))
    if alpha == 1.0:
        return -(p * log_p).sum(-1) + 0.0  # + 0.0: no -0.0 for rank one

    # log(sum p^alpha) as log1p(sum p (p^(alpha-1) - 1)): exact, and stable as
    # alpha -> 1, where the plain form divides a vanishing difference by
    # 1 - alpha. Where sum p^alpha is small instead (large alpha over many
    # directions: under 1e-15 for alpha = 10 over a few hundred), log1p of a
    # sum near -1 loses every digit and logsumexp keeps them.
    excess = torch.where(positive, p * torch.expm1((alpha - 1.0) * log_p), 0.0).sum(-1)
    if alpha < 1.0:
        return torch.log1p(excess) / (1.0 - alpha)  # sum p^alpha >= 1
    log_sum = torch.logsumexp(torch.where(positive, alpha * log_p, -torch.inf), -1)
    return torch.where(excess > -0.5, torch.log1p(excess), log_sum) / (1.0 - alpha)


def _gram_entropy(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """(..., m, m) PSD Gram -> (...,) S_alpha of its trace-normalised spectrum."""
    if alpha == 2.0:
        # sum p_i^2 = ||K||_F^2 / tr(K)^2: no eigendecomposition needed.
        trace = torch.diagonal(gram, dim1=-2, dim2=-1).sum(-1)
        purity = gram.square().sum((-2, -1)) / trace.square()
        return -torch.log(purity.clamp_max(1.0)) + 0.0  # <= 1 but for round-off
    return _renyi(_eigenvalues(gram), alpha)


# ----------------------------------------------------------- preprocessing


@_one_torch_thread
def preprocess(z, center=False, normalize=False, offsets=None):
    """Centre and/or L2-normalise the rows of an activation matrix.

    Parameters
    ----------
    z : (..., dim) array or tensor
        Rows to transform: token vectors ``(n_tokens, dim)``, pooled
        embeddings ``(n_texts, dim)`` or views ``(n_prompts, n_views, dim)``.
    center : bool
        Subtract the mean row: of each prompt when ``offsets`` is given, else
        of all rows.
    normalize : bool
        Divide every row by its L2 norm (after centring). Rows of norm zero
        stay zero.
    offsets : (n_prompts + 1,) int array, optional
        Prompt boundaries of ``z`` (2-D only), for centring within prompts.

    Returns
    -------
    (..., dim) float64 ndarray, or a float64 tensor on the compute device if
    ``z`` was a tensor.

    Notes
    -----
    ``PREPROCESS_DEFAULTS`` holds the defaults of the workflow for each metric
    and docs/metrics.md the reasons.
    """
    as_numpy = not isinstance(z, torch.Tensor)
    ndim = np.ndim(z) if as_numpy else z.ndim
    if ndim < 2:
        raise ValueError(f"z must be at least 2-D (..., dim), got {ndim}-D")
    x = _as_tensor(z, "z", ndim, "(..., dim)")

    if center and offsets is not None:
        if x.ndim != 2:
            raise ValueError(
                f"z must be 2-D (n_tokens, dim) with offsets, got {ndim}-D"
            )
        lengths = torch.as_tensor(np.diff(_check_offsets(offsets, x.shape[0])))
        prompt_of = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        prompt_of = prompt_of.to(x.device)
        sums = torch.zeros(len(lengths), x.shape[1], dtype=x.dtype, device=x.device)
        sums.index_add_(0, prompt_of, x)
        x = x - (sums / lengths.to(x.device)[:, None])[prompt_of]
    elif center:
        x = x - x.reshape(-1, x.shape[-1]).mean(0)
    elif offsets is not None:
        _check_offsets(offsets, x.shape[0])

    if normalize:
        norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        x = x / torch.where(norms > 0, norms, torch.ones_like(norms))

    return x.cpu().numpy() if as_numpy else x


# ---------------------------------------------------------------- entropies


@_one_torch_thread
def matrix_entropy(z, alpha=1.0) -> float:
    """Matrix-based Renyi entropy of order ``alpha`` of the Gram spectrum of ``z``.

    Parameters
    ----------
    z : (n_samples, dim) array or tensor
        Used exactly as given: no centring, no normalising, no clamping of
        Gram entries (see :func:`preprocess`).
    alpha : float, default 1.0
        Order of the entropy, > 0. ``alpha == 1`` is ``-sum p log p``; values
        near 1 are computed stably; ``alpha == 2`` uses
        ``||K||_F^2 / tr(K)^2`` without an eigendecomposition.

    Returns
    -------
    float
        ``log(sum_i p_i**alpha) / (1 - alpha)`` with ``p = lambda / tr K``,
        ``K = z z^T``; in nats, between 0 (rank one) and
        ``log(min(n_samples, dim))``.

    Notes
    -----
    The smaller of ``z z^T`` and ``z^T z`` is decomposed: their nonzero
    spectra are equal. Eigenvalues within round-off of zero are set to 0.
    """
    x = _as_tensor(z, "z", 2, "(n_samples, dim)")
    alpha = _check_alpha(alpha)
    if not x.any():
        raise ValueError("z is all zeros: its spectrum has no mass to normalise")

    return float(_gram_entropy(_gram(x), alpha))


@_one_torch_thread
def dataset_entropy(pooled, alpha=1.0) -> float:
    """Entropy of a corpus: :func:`matrix_entropy` of its pooled embeddings.

    Parameters
    ----------
    pooled : (n_texts, dim) array or tensor
        One embedding a text (e.g. the mean of its token vectors); at least 2.
    alpha : float, default 1.0
        Order of the entropy, > 0.

    Returns
    -------
    float
        Dataset entropy in nats; higher = texts spread over more directions.
    """
    x = _as_tensor(pooled, "pooled", 2, "(n_texts, dim)")
    _check_min_rows(x, "pooled")
    return matrix_entropy(x, alpha)


@_one_torch_thread
def prompt_entropy(tokens, offsets, alpha=1.0) -> np.ndarray:
    """Entropy of every prompt's token matrix, batched over prompts.

    Parameters
    ----------
    tokens : (n_tokens, dim) array or tensor
        Token vectors of all prompts, concatenated.
    offsets : (n_prompts + 1,) int array
        Tokens of prompt i are ``tokens[offsets[i]:offsets[i + 1]]``.
    alpha : float, default 1.0
        Order of the entropy, > 0.

    Returns
    -------
    (n_prompts,) float64 ndarray
        :func:`matrix_entropy` of each prompt's tokens; 0 for a one-token
        prompt; NaN for a prompt whose tokens are all zero (a one-token
        prompt after centring, for one).

    Notes
    -----
    Prompts are grouped by length and each group's Gram matrices go through
    one batched ``eigvalsh``. On the GPU, where a call costs more than the
    work of a small matrix, lengths are padded up (waste under ~25 %) into
    fewer groups; zero rows only add zero eigenvalues, which do not change the
    entropy. On the CPU every length is its own group: a padded matrix costs
    up to twice as much to decompose. Work goes in chunks of a few MiB on the
    CPU (cache-sized) and a few hundred MiB on the GPU, whatever the number of
    prompts.
    """
    x = _as_tensor(tokens, "tokens", 2, "(n_tokens, dim)", keep_dtype=True)
    offsets = _check_offsets(offsets, x.shape[0])
    alpha = _check_alpha(alpha)
    lengths = np.diff(offsets)
    dim = x.shape[1]

    entropies = np.zeros(len(lengths))
    single = np.flatnonzero(lengths == 1)  # rank one, or nothing if zero
    if single.size:
        zero = ~x[torch.as_tensor(offsets[single], device=x.device)].any(1)
        entropies[single[zero.cpu().numpy()]] = np.nan
    buckets = _length_buckets(lengths, pad=x.device.type != "cpu")
    for pad, members in buckets:
        side = min(pad, dim)
        per_prompt = pad * dim + 2 * side * side
        for chunk in _chunks(members, per_prompt, _chunk_elements(x.device)):
            padded = _gather_padded(x, offsets[chunk], lengths[chunk], pad)
            entropies[chunk] = _gram_entropy(_gram(padded), alpha).cpu().numpy()

    log.debug("prompt entropy of %d prompts in %d buckets", len(lengths), len(buckets))
    return entropies


def _length_buckets(lengths: np.ndarray, pad: bool) -> list[tuple[int, np.ndarray]]:
    """Prompts of 2+ tokens grouped by (padded) length: [(length, prompt indices)].

    With ``pad``, lengths go up to a multiple of a quarter of their power of
    two (at least 8), so that padding adds under 25 % to any prompt.
    """
    members = np.flatnonzero(lengths > 1)
    if members.size == 0:
        return []

    need = lengths[members]
    if pad:
        step = 2 ** np.maximum(np.floor(np.log2(need)).astype(np.int64) - 2, 3)
        need = -(-need // step) * step
    return [(int(length), members[need == length]) for length in np.unique(need)]


def _chunks(members: np.ndarray, per_item: int, budget: int) -> Iterator[np.ndarray]:
    """Split indices into chunks of about budget / per_item (at least 1)."""
    size = max(1, budget // max(1, per_item))
    for start in range(0, len(members), size):
        yield members[start : start + size]


def _gather_padded(x, starts, lengths, pad: int) -> torch.Tensor:
    """Prompts of x -> (n_prompts, pad, dim) float64, zero rows after each end."""
    steps = torch.arange(pad, device=x.device)
    rows = torch.as_tensor(starts, device=x.device)[:, None] + steps  # (n, pad)
    padded = x[rows.clamp_max(x.shape[0] - 1)].to(torch.float64)
    beyond = steps >= torch.as_tensor(lengths, device=x.device)[:, None]
    if beyond.any():
        padded.masked_fill_(beyond[..., None], 0.0)
    return padded


@_one_torch_thread
def effective_rank(z) -> float:
    """Effective rank (Roy & Vetterli 2007) of ``z``.

    Parameters
    ----------
    z : (n_samples, dim) array or tensor
        Used exactly as given; at least 2 rows.

    Returns
    -------
    float
        ``exp(-sum_i q_i log q_i)`` with ``q = sigma / sum(sigma)`` the
        normalised singular values of ``z``; between 1 (rank one) and
        ``min(n_samples, dim)`` (all singular values equal).

    Notes
    -----
    Singular values are the square roots of the smaller Gram's eigenvalues,
    with round-off around zero set to 0 so that rank-deficient data gives its
    rank, not a slightly larger number.
    """
    x = _as_tensor(z, "z", 2, "(n_samples, dim)")
    _check_min_rows(x, "z")
    if not x.any():
        raise ValueError("z is all zeros: its spectrum has no mass to normalise")

    sigma = torch.sqrt(_eigenvalues(_gram(x)))
    return float(torch.exp(_renyi(sigma, 1.0)))


def entropy_variants(value, n_samples, dim) -> dict:
    """Normalised forms of an entropy, the ``variant`` column of the metric tables.

    Parameters
    ----------
    value : float or (n,) array
        Raw entropy in nats (per prompt or per corpus); NaN (a prompt with no
        entropy) stays NaN.
    n_samples : int or (n,) int array
        N, the rows of the matrix the entropy came from (tokens of each
        prompt, texts of a corpus).
    dim : int
        D, the feature dimension.

    Returns
    -------
    dict of str -> float or ndarray
        ``raw``; ``log_n`` = value / log N; ``log_d`` = value / log D;
        ``max_entropy`` = value / min(log N, log D), the largest entropy the
        matrix could have, so the result lies in [0, 1]. A divisor of 0
        (N or D equal to 1) gives NaN.
    """
    raw = np.asarray(value, dtype=np.float64)
    n = np.asarray(n_samples)
    d = np.asarray(dim)
    for name, array in (("n_samples", n), ("dim", d)):
        if not np.issubdtype(array.dtype, np.integer) or np.any(array < 1):
            raise ValueError(f"{name} must be integers >= 1, got {array!r}")
    if np.any(np.isinf(raw)):
        raise ValueError("value contains Inf")

    log_n, log_d = np.log(n), np.log(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        variants = {
            "raw": raw,
            "log_n": np.where(log_n > 0, raw / log_n, np.nan),
            "log_d": np.where(log_d > 0, raw / log_d, np.nan),
            "max_entropy": np.where(
                np.minimum(log_n, log_d) > 0, raw / np.minimum(log_n, log_d), np.nan
            ),
        }
    scalar = raw.ndim == 0 and n.ndim == 0 and d.ndim == 0
    return {key: float(v) if scalar else v for key, v in variants.items()}


# ----------------------------------------------------------------- geometry


@_one_torch_thread
def curvature(tokens, offsets) -> CurvatureResult:
    """Mean turning angle of each prompt's token trajectory (Hosseini & Fedorenko).

    Parameters
    ----------
    tokens : (n_tokens, dim) array or tensor
        Token vectors of all prompts, concatenated.
    offsets : (n_prompts + 1,) int array
        Tokens of prompt i are ``tokens[offsets[i]:offsets[i + 1]]``.

    Returns
    -------
    CurvatureResult
        ``values`` (n_prompts,): for each prompt, the mean over k of the angle
        between consecutive steps ``v_k = z_{k+1} - z_k``, in radians in
        [0, pi]; NaN for skipped prompts. ``n_skipped``: how many were skipped.

    Notes
    -----
    A prompt needs 3 tokens for one angle; shorter ones are skipped. A step of
    length zero (a repeated vector) has no direction: the angles it takes
    part in are left out of the mean, and a prompt left with none is skipped.
    All prompts are done at once: steps of the concatenated tokens, with the
    angles whose three tokens cross a prompt boundary masked out. ``arccos``
    of a cosine is good to about 1e-8 rad near 0 and pi, far below the
    spread of real angles.
    """
    x = _as_tensor(tokens, "tokens", 2, "(n_tokens, dim)", keep_dtype=True)
    offsets = _check_offsets(offsets, x.shape[0])
    lengths = np.diff(offsets)
    n_prompts = len(lengths)

    sums = torch.zeros(n_prompts, dtype=torch.float64, device=x.device)
    counts = torch.zeros(n_prompts, dtype=torch.float64, device=x.device)
    budget = _chunk_elements(x.device) // x.shape[1]
    for first, stop in _contiguous_chunks(lengths, budget):
        z = x[offsets[first] : offsets[stop]].to(torch.float64)
        angle, defined = _turning_angles(z)  # (t - 2,): tokens k, k + 1, k + 2

        prompt_of = torch.repeat_interleave(
            torch.arange(first, stop, device=x.device),
            torch.as_tensor(lengths[first:stop], device=x.device),
        )
        keep = defined & (prompt_of[:-2] == prompt_of[2:])
        sums.index_add_(0, prompt_of[:-2][keep], angle[keep])
        counts.index_add_(0, prompt_of[:-2][keep], torch.ones_like(angle[keep]))

    values = torch.where(counts > 0, sums / counts.clamp_min(1), torch.nan)
    return CurvatureResult(values.cpu().numpy(), int((counts == 0).sum()))


def _turning_angles(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, dim) path -> (t - 2,) angles between consecutive steps, and where defined.

    A step of length zero has no direction, so neither angle it is part of is
    defined.
    """
    step = torch.diff(z, dim=0)  # (t - 1, dim): step k goes from token k to k + 1
    length = torch.linalg.vector_norm(step, dim=1)
    dot = torch.linalg.vecdot(step[1:], step[:-1])
    product = length[1:] * length[:-1]
    defined = product > 0

    cosine = dot / torch.where(defined, product, 1.0)
    return torch.arccos(cosine.clamp(-1.0, 1.0)), defined


def _contiguous_chunks(lengths: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Runs of consecutive prompts [first, stop) of about budget tokens."""
    ends = np.cumsum(lengths)
    first = 0
    while first < len(lengths):
        start = ends[first] - lengths[first]
        stop = max(first + 1, int(np.searchsorted(ends, start + budget, "right")))
        yield first, stop
        first = stop


# --------------------------------------------------------------- invariance


@_one_torch_thread
def infonce(view_a, view_b, temperature=0.1) -> float:
    """Symmetric InfoNCE loss between two views of the same texts (Oord et al.).

    Parameters
    ----------
    view_a, view_b : (n, dim) arrays or tensors
        Embeddings of two augmentations; row i of each comes from text i.
    temperature : float, default 0.1
        Softmax temperature tau, > 0.

    Returns
    -------
    float
        The loss in nats, averaged over both directions::

            L = 1/(2n) sum_i [ -log softmax_j(s(a_i, b_j)/tau)_i
                               -log softmax_j(s(b_i, a_j)/tau)_i ]

        with ``s`` the cosine similarity. Lower = views of a text are more
        alike than views of different texts (more invariant). It is above 0
        and approaches 0 only as tau -> 0 for perfectly separated texts;
        views that carry nothing about each other give about ``log n`` or
        more. ``log n - L`` is the InfoNCE lower bound on the mutual
        information between the views (in nats).
    """
    a, b = _check_views(view_a, view_b)
    tau = _check_positive(temperature, "temperature")
    a = _unit_rows(a, "view_a")
    b = _unit_rows(b, "view_b")

    return float(_symmetric_loss(a, b, tau))


def _unit_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if not (norms > 0).all():
        raise ValueError(f"{name} has an all-zero row: its cosine is undefined")
    return x / norms


def _symmetric_loss(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Both directions of the InfoNCE loss from one pass over the logits.

    Row i of ``a @ b^T / tau`` holds the a_i -> b logits and column j the
    b_j -> a logits, so every block of rows serves both: its row-wise
    logsumexp is final, its column-wise one is merged into a running total.
    Both directions share the positives a_i . b_i / tau.
    """
    n = a.shape[0]
    block = max(1, _chunk_elements(a.device) // n)
    rows_total = torch.zeros((), dtype=torch.float64, device=a.device)
    columns = torch.full((n,), -torch.inf, dtype=torch.float64, device=a.device)
    for start in range(0, n, block):
        logits = _matmul(a[start : start + block], b.mT) / tau  # (block, n)
        rows_total += torch.logsumexp(logits, dim=1).sum()
        columns = torch.logaddexp(columns, torch.logsumexp(logits, dim=0))
    positive = (a * b).sum(1) / tau
    return 0.5 * (rows_total + columns.sum()) / n - positive.mean()


@_one_torch_thread
def lidar(views, alpha=1.0, delta=1e-4) -> float:
    """LiDAR (Thilak et al. 2023): effective rank of the LDA matrix of the views.

    Parameters
    ----------
    views : (n_prompts, n_views, dim) array or tensor
        Embeddings of ``n_views`` augmentations of each prompt; each prompt
        is a class.
    alpha : float, default 1.0
        Order of the entropy, > 0 (the LiDAR paper uses 1).
    delta : float, default 1e-4
        Ridge added to the within-class scatter, > 0.

    Returns
    -------
    float
        ``exp(S_alpha(p))`` with ``p`` the normalised eigenvalues of
        ``Sw^(-1/2) Sb Sw^(-1/2)``, where
        ``Sb = 1/n sum_c (mu_c - mu)(mu_c - mu)^T`` and
        ``Sw = 1/(n q) sum_c sum_v (x_cv - mu_c)(x_cv - mu_c)^T + delta I``.
        Between 1 and ``min(n_prompts - 1, dim)``; higher = more directions
        along which prompts are told apart better than their own views are.
        ``log`` of it is the entropy form that the Layer-by-Layer code
        reported.

    Notes
    -----
    ``Sw^(-1/2) Sb Sw^(-1/2)`` has the eigenvalues of ``L^-1 Sb L^-T`` with
    ``Sw = L L^T`` (Cholesky), which are computed instead: no matrix square
    root or inverse. The LiDAR paper adds a small constant to ``p`` before the
    logarithm; here zero eigenvalues are dropped exactly instead.
    """
    x = _as_tensor(views, "views", 3, "(n_prompts, n_views, dim)")
    alpha = _check_alpha(alpha)
    delta = _check_positive(delta, "delta")
    n, q, dim = x.shape
    if n < 2 or q < 2:
        raise ValueError(
            f"views needs at least 2 prompts and 2 views each, got shape {(n, q, dim)}"
        )

    class_means = x.mean(1)  # (n, dim)
    within = (x - class_means[:, None]).reshape(n * q, dim)
    s_w = _matmul(within.mT, within) / (n * q)
    s_w.diagonal().add_(delta)
    between = class_means - class_means.mean(0)  # (n, dim); Sb = between^T between / n

    whitened = _whiten(s_w, between.mT, delta)  # (dim, n)
    lam = _eigenvalues(_gram(whitened.mT) / n)
    return float(torch.exp(_renyi(lam, alpha)))


def _whiten(s_w: torch.Tensor, columns: torch.Tensor, delta: float) -> torch.Tensor:
    """W^-1 columns for a factor W W^T = s_w: Cholesky, or eigh if that fails.

    Either factor gives W^-1 Sb W^-T the eigenvalues of Sw^-1/2 Sb Sw^-1/2.
    Cholesky fails only when round-off in s_w outweighs delta (activations in
    the thousands, not normalised); the eigendecomposition then floors the
    spectrum at delta.
    """
    chol, info = torch.linalg.cholesky_ex(s_w)
    if info == 0:
        return torch.linalg.solve_triangular(chol, columns, upper=False)

    log.warning("LiDAR: within-class scatter not positive definite, using eigh")
    w, v = torch.linalg.eigh(s_w)
    return (v.mT @ columns) / torch.sqrt(w.clamp_min(delta))[:, None]


@_one_torch_thread
def dime(view_a, view_b, alpha=1.0, n_permutations=10, seed=0) -> float:
    """DiME (Skean et al. 2023): difference of matrix-based joint entropies.

    Parameters
    ----------
    view_a, view_b : (n, dim) arrays or tensors
        Embeddings of two augmentations; row i of each comes from text i.
        Used exactly as given (linear kernel, no centring).
    alpha : float, default 1.0
        Order of the entropies, > 0.
    n_permutations : int, default 10
        Random re-pairings averaged over.
    seed : int, default 0
        Seed of the permutations; the same seed gives the same value.

    Returns
    -------
    float
        ``mean_pi S_alpha(K_a o K_b^pi) - S_alpha(K_a o K_b)``, in nats, where
        ``K = Z Z^T``, ``o`` is the Hadamard product normalised to unit trace
        (the matrix joint entropy of Sanchez Giraldo et al.) and ``K_b^pi``
        re-pairs the samples (rows) of ``view_b`` by a permutation. This is
        the sign of the DiME paper: about 0 for independent views, higher =
        the views share more information (more invariant).

    Notes
    -----
    Costs one ``n x n`` eigendecomposition per permutation (none for
    ``alpha == 2``); the re-paired Gram matrices are decomposed in batches.
    """
    a, b = _check_views(view_a, view_b)
    alpha = _check_alpha(alpha)
    n_permutations = _check_int(n_permutations, "n_permutations", minimum=1)
    seed = _check_int(seed, "seed")
    n = a.shape[0]

    k_a, k_b = _matmul(a, a.mT), _matmul(b, b.mT)
    if not (k_a.diagonal() * k_b.diagonal()).any():
        raise ValueError("view_a and view_b have no pair of nonzero rows")
    paired = _gram_entropy(k_a * k_b, alpha)

    generator = torch.Generator().manual_seed(seed)
    perms = torch.stack(
        [torch.randperm(n, generator=generator) for _ in range(n_permutations)]
    )
    perms = perms.to(a.device)
    shuffled = []
    per_chunk = max(1, _chunk_elements(a.device) // (2 * n * n))
    for chunk in torch.split(perms, per_chunk):
        k_b_perm = torch.stack([_permuted(k_b, perm) for perm in chunk])
        shuffled.append(_gram_entropy(k_a * k_b_perm, alpha))  # (chunk,)

    return float(torch.cat(shuffled).mean() - paired)


def _permuted(gram: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """gram[perm][:, perm]: the Gram matrix of the rows reordered by perm.

    On the CPU through numpy's ``take``, which took a third of torch's time
    for the two gathers here (1000 x 1000: 2 ms against 6 ms).
    """
    if gram.device.type != "cpu":
        return gram[perm][:, perm]
    order = perm.numpy()
    return torch.from_numpy(gram.numpy().take(order, 0).take(order, 1))
