"""Metrics against closed forms and invariances (docs/metrics.md)."""

import math

import numpy as np
import pytest
import torch

from layerscope import metrics


def _offsets(lengths):
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _spectrum_entropy(z, alpha):
    """Reference: S_alpha from the full N x N Gram with numpy."""
    lam = np.clip(np.linalg.eigvalsh(z @ z.T), 0, None)
    p = lam / lam.sum()
    p = p[p > 1e-14]
    if alpha == 1:
        return float(-(p * np.log(p)).sum())
    return float(np.log((p**alpha).sum()) / (1 - alpha))


def _random_rotation(dim, rng):
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


# ---------------------------------------------------------------- entropy


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_isotropic_gaussian_entropy_is_near_log_dim(alpha):
    z = np.random.default_rng(0).standard_normal((20_000, 8))

    entropy = metrics.matrix_entropy(z, alpha)

    assert entropy == pytest.approx(math.log(8), abs=0.01)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_rank_one_data_has_zero_entropy(alpha):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((50, 1)) @ rng.standard_normal((1, 30))

    assert metrics.matrix_entropy(z, alpha) == pytest.approx(0.0, abs=1e-10)


def test_k_orthogonal_rows_of_equal_norm_have_entropy_log_k():
    z = 3.0 * np.eye(5, 12)

    assert metrics.matrix_entropy(z) == pytest.approx(math.log(5), abs=1e-12)


def test_negative_gram_entries_are_not_clamped():
    # Two opposite rows span one direction: K = [[1, -1], [-1, 1]] has
    # eigenvalues {2, 0}. Clamping -1 to 0 would give the identity and log 2.
    z = np.array([[1.0, 0.0], [-1.0, 0.0]])

    assert metrics.matrix_entropy(z) == pytest.approx(0.0, abs=1e-12)


def test_entropy_is_invariant_to_row_order_rotation_and_scale():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((40, 10)) * np.linspace(0.1, 3, 10)
    moved = 7.5 * z[rng.permutation(40)] @ _random_rotation(10, rng)

    for alpha in (0.5, 1.0, 2.0):
        assert metrics.matrix_entropy(moved, alpha) == pytest.approx(
            metrics.matrix_entropy(z, alpha), abs=1e-10
        )


def test_tall_and_wide_matrices_of_the_same_data_share_their_entropy():
    # Z (60 x 20) goes through Z^T Z, its transpose (20 x 60) through Z Z^T;
    # both must equal the entropy of the full 60 x 60 Gram.
    z = np.random.default_rng(3).standard_normal((60, 20)) * np.arange(1, 21)

    tall = metrics.matrix_entropy(z)
    wide = metrics.matrix_entropy(z.T)

    assert tall == pytest.approx(wide, abs=1e-10)
    assert tall == pytest.approx(_spectrum_entropy(z, 1), abs=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 3.0])
def test_entropy_matches_the_eigenvalue_formula(alpha):
    # alpha = 2 takes the Frobenius-norm shortcut; the others the spectrum.
    z = np.random.default_rng(4).standard_normal((30, 50)) * np.linspace(0.2, 2, 50)

    assert metrics.matrix_entropy(z, alpha) == pytest.approx(
        _spectrum_entropy(z, alpha), abs=1e-10
    )


def test_entropy_is_continuous_at_alpha_one():
    z = np.random.default_rng(5).standard_normal((30, 12)) * np.arange(1, 13)
    at_one = metrics.matrix_entropy(z, 1.0)

    for alpha in (1 - 1e-6, 1 + 1e-6, 1 + 1e-12):
        assert metrics.matrix_entropy(z, alpha) == pytest.approx(at_one, abs=1e-5)


@pytest.mark.parametrize("alpha", [10.0, 50.0, 200.0])
def test_entropy_of_high_orders_keeps_its_digits(alpha):
    # sum p^alpha is far below 1e-15 here; log1p(sum - 1) would give inf
    z = np.random.default_rng(17).standard_normal((300, 200))
    p = np.linalg.eigvalsh(z.T @ z)
    p /= p.sum()
    log_top = np.log(p.max())
    expected = (alpha * log_top + np.log(((p / p.max()) ** alpha).sum())) / (1 - alpha)

    assert metrics.matrix_entropy(z, alpha) == pytest.approx(expected, rel=1e-12)


def test_entropy_near_zero_keeps_its_relative_digits():
    # p = (1 - e, e): S_3 = -log(p1^3 + p2^3) / 2 = -log1p(-3e + 3e^2) / 2
    small = 1e-10
    z = np.diag([1.0, math.sqrt(small)])
    e = small / (1 + small)

    expected = -math.log1p(-3 * e + 3 * e * e) / 2
    assert metrics.matrix_entropy(z, 3.0) == pytest.approx(expected, rel=1e-6)


def test_prompt_entropy_matches_matrix_entropy_of_each_prompt():
    rng = np.random.default_rng(6)
    lengths = np.array([1, 2, 3, 9, 16, 17, 40, 5, 70, 1, 33])  # some above dim
    offsets = _offsets(lengths)
    tokens = rng.standard_normal((offsets[-1], 16)).astype(np.float32)

    for alpha in (0.5, 1.0, 2.0):
        batched = metrics.prompt_entropy(tokens, offsets, alpha)
        one_by_one = [
            metrics.matrix_entropy(tokens[start:stop], alpha)
            for start, stop in zip(offsets[:-1], offsets[1:])
        ]
        np.testing.assert_allclose(batched, one_by_one, atol=1e-10)


def test_padded_length_groups_give_the_entropies_of_exact_ones(monkeypatch):
    # the GPU pads prompts up into fewer groups; the CPU keeps exact lengths
    rng = np.random.default_rng(16)
    lengths = np.array([2, 3, 9, 11, 16, 17, 23, 40, 5, 70, 1, 33])
    offsets = _offsets(lengths)
    tokens = rng.standard_normal((offsets[-1], 24)).astype(np.float32)
    exact = metrics.prompt_entropy(tokens, offsets)

    always_pad = metrics._length_buckets
    monkeypatch.setattr(
        metrics, "_length_buckets", lambda lengths, pad: always_pad(lengths, True)
    )
    padded = metrics.prompt_entropy(tokens, offsets)

    assert len(always_pad(lengths, True)) < len(always_pad(lengths, False))
    np.testing.assert_allclose(padded, exact, atol=1e-12)


def test_one_token_prompts_have_zero_entropy():
    tokens = np.random.default_rng(7).standard_normal((4, 8))

    entropy = metrics.prompt_entropy(tokens, [0, 1, 2, 4])

    assert entropy[0] == 0.0 and entropy[1] == 0.0 and entropy[2] > 0


def test_a_one_token_prompt_centred_to_zero_has_no_entropy():
    tokens = np.random.default_rng(7).standard_normal((4, 8))
    offsets = [0, 1, 4]
    centred = metrics.preprocess(tokens, center=True, normalize=True, offsets=offsets)

    entropy = metrics.prompt_entropy(centred, offsets)

    assert np.isnan(entropy[0]) and entropy[1] > 0


def test_prompt_of_all_zero_tokens_has_no_entropy():
    tokens = np.vstack([np.zeros((3, 4)), np.eye(2, 4)])

    entropy = metrics.prompt_entropy(tokens, [0, 3, 5])

    assert np.isnan(entropy[0]) and entropy[1] == pytest.approx(math.log(2))


def test_tensor_and_array_inputs_give_the_same_values():
    rng = np.random.default_rng(8)
    tokens = rng.standard_normal((30, 6))
    offsets = np.array([0, 10, 30])

    from_array = metrics.prompt_entropy(tokens, offsets)
    from_tensor = metrics.prompt_entropy(
        torch.from_numpy(tokens), torch.tensor(offsets)
    )

    np.testing.assert_array_equal(from_array, from_tensor)


def test_dataset_entropy_is_the_entropy_of_the_pooled_rows():
    pooled = np.random.default_rng(9).standard_normal((25, 7))

    assert metrics.dataset_entropy(pooled, 2.0) == pytest.approx(
        _spectrum_entropy(pooled, 2), abs=1e-10
    )


# ---------------------------------------------------------- effective rank


def test_rank_one_data_has_effective_rank_one():
    rng = np.random.default_rng(10)
    z = rng.standard_normal((50, 1)) @ rng.standard_normal((1, 30))

    assert metrics.effective_rank(z) == pytest.approx(1.0, abs=1e-9)


def test_k_equal_singular_values_give_effective_rank_k():
    rng = np.random.default_rng(11)
    basis = np.linalg.qr(rng.standard_normal((40, 6)))[0]  # 6 orthonormal columns
    z = 2.0 * basis @ _random_rotation(6, rng)[:, :6] @ np.eye(6, 15)

    assert metrics.effective_rank(z) == pytest.approx(6.0, abs=1e-9)


def test_effective_rank_is_at_least_exp_of_entropy():
    z = np.random.default_rng(12).standard_normal((80, 20)) * np.geomspace(0.01, 1, 20)

    assert metrics.effective_rank(z) >= math.exp(metrics.matrix_entropy(z))


# ---------------------------------------------------------------- curvature


def test_straight_token_path_has_zero_curvature():
    # A line that misses the origin: token vectors turn, steps do not.
    rng = np.random.default_rng(13)
    start, direction = rng.standard_normal(5), rng.standard_normal(5)
    tokens = start + np.cumsum(rng.uniform(0.5, 2.0, 12))[:, None] * direction

    result = metrics.curvature(tokens, [0, 12])

    assert result.values[0] == pytest.approx(0.0, abs=1e-7)


def test_right_angle_turns_have_curvature_half_pi():
    steps = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, 2, 0]])
    tokens = np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])

    result = metrics.curvature(tokens, [0, 6])

    assert result.values[0] == pytest.approx(math.pi / 2, abs=1e-12)


def test_path_that_doubles_back_has_curvature_pi():
    tokens = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])

    assert metrics.curvature(tokens, [0, 4]).values[0] == pytest.approx(math.pi)


def test_prompts_shorter_than_three_tokens_are_skipped():
    tokens = np.random.default_rng(14).standard_normal((9, 4))

    result = metrics.curvature(tokens, [0, 1, 3, 9])

    assert np.isnan(result.values[:2]).all() and np.isfinite(result.values[2])
    assert result.n_skipped == 2


def test_curvature_does_not_join_neighbouring_prompts():
    # Two straight prompts in different directions: any angle across the
    # boundary would be nonzero.
    first = np.arange(4)[:, None] * np.array([1.0, 0.0])
    second = np.arange(5)[:, None] * np.array([0.0, 1.0]) + 10
    tokens = np.vstack([first, second])

    result = metrics.curvature(tokens, [0, 4, 9])

    np.testing.assert_allclose(result.values, [0.0, 0.0], atol=1e-7)


def test_curvature_matches_the_angle_formula_prompt_by_prompt():
    rng = np.random.default_rng(15)
    lengths = [3, 8, 20, 4]
    offsets = _offsets(lengths)
    tokens = rng.standard_normal((offsets[-1], 7))

    result = metrics.curvature(tokens, offsets)

    for i, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
        v = np.diff(tokens[start:stop], axis=0)
        cos = (v[1:] * v[:-1]).sum(1) / np.linalg.norm(v[1:], axis=1)
        cos /= np.linalg.norm(v[:-1], axis=1)
        assert result.values[i] == pytest.approx(np.arccos(cos).mean(), abs=1e-10)


# ---------------------------------------------------------------- InfoNCE


def test_identical_orthonormal_views_reach_the_infonce_closed_form():
    # cos = 1 with itself, 0 with the others: L = log(1 + (n - 1) e^(-1/tau)).
    n, tau = 16, 0.1
    views = 5.0 * np.eye(n, 20)

    loss = metrics.infonce(views, views, temperature=tau)

    assert loss == pytest.approx(math.log(1 + (n - 1) * math.exp(-1 / tau)))


def test_identical_views_score_lower_than_random_views():
    rng = np.random.default_rng(16)
    a, b = rng.standard_normal((64, 32)), rng.standard_normal((64, 32))

    assert metrics.infonce(a, a) < metrics.infonce(a, a + 0.5 * b)
    assert metrics.infonce(a, a + 0.5 * b) < metrics.infonce(a, b)


def test_infonce_is_symmetric_and_ignores_row_norms():
    rng = np.random.default_rng(17)
    a, b = rng.standard_normal((20, 8)), rng.standard_normal((20, 8))
    scale = rng.uniform(0.1, 10, (20, 1))

    assert metrics.infonce(a, b) == pytest.approx(metrics.infonce(b, a))
    assert metrics.infonce(scale * a, b) == pytest.approx(metrics.infonce(a, b))


def test_infonce_in_row_blocks_matches_the_formula(monkeypatch):
    # 40 rows in blocks of 3: the column-wise terms are merged across blocks
    monkeypatch.setattr(metrics, "_CPU_CHUNK_ELEMENTS", 3 * 40)
    rng = np.random.default_rng(19)
    a, b = rng.standard_normal((40, 8)), rng.standard_normal((40, 8))
    a_unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    b_unit = b / np.linalg.norm(b, axis=1, keepdims=True)
    logits = a_unit @ b_unit.T / 0.1
    positive = np.diag(logits)
    a_to_b = np.log(np.exp(logits).sum(1)) - positive
    b_to_a = np.log(np.exp(logits).sum(0)) - positive

    loss = metrics.infonce(a, b, temperature=0.1)

    assert loss == pytest.approx(0.5 * (a_to_b.mean() + b_to_a.mean()), rel=1e-12)


# ------------------------------------------------------------------- DiME


def test_dime_of_independent_views_is_near_zero_and_of_identical_views_positive():
    # More samples than features: the re-pairing must shuffle samples.
    rng = np.random.default_rng(18)
    a, b = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))

    independent = metrics.dime(a, b)
    identical = metrics.dime(a, a)

    assert identical > 0.3
    assert abs(independent) < 0.05 * identical


def test_dime_grows_with_shared_information():
    rng = np.random.default_rng(19)
    a, noise = rng.standard_normal((200, 12)), rng.standard_normal((200, 12))

    values = [metrics.dime(a, a + s * noise) for s in (0.1, 1.0, 10.0)]

    assert values[0] > values[1] > values[2]


def test_dime_repeats_with_the_same_seed():
    rng = np.random.default_rng(20)
    a = rng.standard_normal((50, 6))
    b = a + rng.standard_normal((50, 6))

    assert metrics.dime(a, b, seed=3) == metrics.dime(a, b, seed=3)
    assert metrics.dime(a, b, seed=3) != metrics.dime(a, b, seed=4)


def test_dime_with_alpha_two_matches_the_eigenvalue_formula():
    rng = np.random.default_rng(21)
    a, b = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    joint = (a @ a.T) * (b @ b.T)
    lam = np.linalg.eigvalsh(joint / np.trace(joint))

    generator = torch.Generator().manual_seed(0)
    perm = torch.randperm(30, generator=generator).numpy()  # dime's first draw
    joint_perm = (a @ a.T) * (b[perm] @ b[perm].T)
    lam_perm = np.linalg.eigvalsh(joint_perm / np.trace(joint_perm))
    expected = np.log((lam**2).sum()) - np.log((lam_perm**2).sum())

    value = metrics.dime(a, b, alpha=2.0, n_permutations=1, seed=0)

    assert value == pytest.approx(expected, abs=1e-10)


# ------------------------------------------------------------------ LiDAR


def test_identical_views_of_points_on_k_axes_have_lidar_k():
    # Class means +-e_i (i < k): Sb = I_k / k, Sw = delta I, so LDA ~ I_k.
    k, dim, n_views = 4, 10, 3
    means = np.vstack([np.eye(k, dim), -np.eye(k, dim)])
    views = np.repeat(means[:, None, :], n_views, axis=1)

    assert metrics.lidar(views) == pytest.approx(k, abs=1e-9)


def test_lidar_grows_when_views_of_a_prompt_cluster_tightly():
    # Prompts differ along 4 directions; views scatter by spread along 2 of
    # them and by 0.1 elsewhere. Tighter views leave more usable directions.
    rng = np.random.default_rng(22)
    n, q, dim = 200, 8, 8
    means = np.zeros((n, 1, dim))
    means[:, 0, :4] = rng.standard_normal((n, 4))
    noise = rng.standard_normal((n, q, dim))

    values = []
    for spread in (2.0, 0.5, 0.1):
        scale = np.full(dim, 0.1)
        scale[:2] = spread
        values.append(metrics.lidar(means + noise * scale))

    assert values[0] < values[1] < values[2]
    assert values[2] == pytest.approx(4.0, abs=0.5)


def test_lidar_without_cholesky_gives_the_same_value(monkeypatch):
    views = np.random.default_rng(26).standard_normal((30, 4, 6))
    expected = metrics.lidar(views)

    def failed_cholesky(matrix):
        return torch.zeros_like(matrix), torch.tensor(1)

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failed_cholesky)

    assert metrics.lidar(views) == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------ preprocessing


def test_preprocess_centres_each_prompt_and_normalises_rows():
    rng = np.random.default_rng(23)
    tokens = rng.standard_normal((10, 5)) + 100.0
    offsets = [0, 4, 10]

    out = metrics.preprocess(tokens, center=True, normalize=True, offsets=offsets)
    centred = metrics.preprocess(tokens, center=True, offsets=offsets)

    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    np.testing.assert_allclose(centred[:4].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(centred[4:].mean(0), 0.0, atol=1e-12)


def test_preprocess_centres_across_all_rows_without_offsets():
    views = np.random.default_rng(24).standard_normal((6, 3, 4)) + 5.0

    out = metrics.preprocess(views, center=True)

    assert out.shape == views.shape
    np.testing.assert_allclose(out.reshape(-1, 4).mean(0), 0.0, atol=1e-12)


def test_preprocess_leaves_zero_rows_at_zero():
    tokens = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])

    out = metrics.preprocess(tokens, center=True, normalize=True, offsets=[0, 1, 3])

    np.testing.assert_array_equal(out[0], 0.0)
    assert np.isfinite(out).all()


# ----------------------------------------------------------- normalisation


def test_entropy_variants_divide_by_log_n_log_d_and_their_minimum():
    variants = metrics.entropy_variants(2.0, n_samples=20, dim=100)

    assert variants["raw"] == 2.0
    assert variants["log_n"] == pytest.approx(2.0 / math.log(20))
    assert variants["log_d"] == pytest.approx(2.0 / math.log(100))
    assert variants["max_entropy"] == pytest.approx(2.0 / math.log(20))


def test_entropy_variants_take_per_prompt_lengths():
    variants = metrics.entropy_variants(np.array([0.0, 1.0]), np.array([1, 8]), 4)

    assert np.isnan(variants["log_n"][0])
    assert variants["max_entropy"][1] == pytest.approx(1.0 / math.log(4))


# ------------------------------------------------------------- validation

_Z = np.ones((4, 3)) + np.eye(4, 3)
_VIEWS = np.random.default_rng(25).standard_normal((5, 3, 4))

BAD_INPUTS = [
    (lambda: metrics.matrix_entropy(np.array([[np.nan, 1.0], [1.0, 2.0]])), "z"),
    (lambda: metrics.matrix_entropy(np.ones(3)), "z"),
    (lambda: metrics.matrix_entropy(np.zeros((3, 2))), "z"),
    (lambda: metrics.matrix_entropy(_Z, alpha=0), "alpha"),
    (lambda: metrics.matrix_entropy(_Z, alpha=-1.0), "alpha"),
    (lambda: metrics.matrix_entropy(_Z, alpha=math.inf), "alpha"),
    (lambda: metrics.dataset_entropy(_Z[:1]), "pooled"),
    (lambda: metrics.effective_rank(np.full((3, 3), np.inf)), "z"),
    (lambda: metrics.effective_rank(np.ones((1, 5))), "z"),
    (lambda: metrics.prompt_entropy(_Z, [0, 3, 2, 4]), "offsets"),
    (lambda: metrics.prompt_entropy(_Z, [0, 2, 3]), "offsets"),
    (lambda: metrics.prompt_entropy(_Z, [1, 4]), "offsets"),
    (lambda: metrics.prompt_entropy(_Z, [0.0, 4.0]), "offsets"),
    (lambda: metrics.prompt_entropy(_Z, [0, 2, 4], alpha=0), "alpha"),
    (lambda: metrics.prompt_entropy(_Z[None], [0, 4]), "tokens"),
    (lambda: metrics.curvature(_Z, [0, 4, 4]), "offsets"),
    (lambda: metrics.infonce(_Z, _Z[:3]), "view_b"),
    (lambda: metrics.infonce(_Z[:1], _Z[:1]), "view_a"),
    (lambda: metrics.infonce(_Z, _Z, temperature=0), "temperature"),
    (lambda: metrics.infonce(np.zeros((4, 3)), _Z), "view_a"),
    (lambda: metrics.dime(_Z, _Z.T), "view_b"),
    (lambda: metrics.dime(_Z, _Z, n_permutations=0), "n_permutations"),
    (lambda: metrics.dime(_Z, _Z, seed=1.5), "seed"),
    (lambda: metrics.dime(_Z, _Z, alpha=-2), "alpha"),
    (lambda: metrics.lidar(_Z), "views"),
    (lambda: metrics.lidar(_VIEWS[:, :1]), "views"),
    (lambda: metrics.lidar(_VIEWS, delta=0), "delta"),
    (lambda: metrics.entropy_variants(1.0, n_samples=0, dim=3), "n_samples"),
    (lambda: metrics.entropy_variants(math.inf, n_samples=2, dim=3), "value"),
    (lambda: metrics.preprocess(np.ones(3), center=True), "z"),
]


@pytest.mark.parametrize(("call", "argument"), BAD_INPUTS)
def test_bad_input_raises_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
