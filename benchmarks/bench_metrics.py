"""Every metric of a synthetic store, layerscope against the straightforward way.

A store of ``--layers`` layers of ``--prompts`` prompts (``--min-tokens`` to
``--max-tokens`` tokens each, ``--dim`` features, ``--views`` augmented views
a prompt) is generated one layer at a time, so memory stays at one layer.
Every metric of every layer is computed with layerscope.metrics; the naive
versions (numpy, a Python loop per prompt, an explicit loop per class,
scipy's ``sqrtm`` and a full ``eigh`` per permutation) run on
``--naive-layers`` evenly spaced layers and their time is scaled to the whole
store. Both run in the same process on the same arrays, and the largest
difference between their values is printed beside the times.

    python benchmarks/bench_metrics.py            # the full store, a few minutes
    python benchmarks/bench_metrics.py --quick    # a small store, seconds
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import scipy.linalg
import torch
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from layerscope import metrics

METRICS = (
    "prompt_entropy",
    "curvature",
    "dataset_entropy",
    "effective_rank",
    "infonce",
    "lidar",
    "dime",
)


# ------------------------------------------------------------ the store


def make_layer(layer, n_layers, lengths, dim, n_views, seed):
    """One layer: tokens (n_tokens, dim), pooled (n_prompts, dim), views.

    Token vectors are a prompt vector plus a walk in a subspace whose rank
    shrinks towards mid-depth and grows again; views are the pooled vector
    plus augmentation noise that is strongest in the first layers.
    """
    rng = np.random.default_rng([seed, layer])
    depth = layer / max(1, n_layers - 1)
    rank = max(2, int(dim * (0.5 - 0.4 * math.sin(math.pi * depth))))
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].astype(np.float32)
    n_prompts, n_tokens = len(lengths), int(lengths.sum())

    prompt_vectors = rng.standard_normal((n_prompts, dim), dtype=np.float32)
    latent = rng.standard_normal((n_tokens, rank), dtype=np.float32)
    tokens = np.repeat(prompt_vectors, lengths, axis=0) + 0.5 * latent @ basis.T
    tokens += 0.05 * rng.standard_normal((n_tokens, dim), dtype=np.float32)

    offsets = np.concatenate([[0], np.cumsum(lengths)])
    pooled = np.add.reduceat(tokens, offsets[:-1], axis=0) / lengths[:, None]

    noise = rng.standard_normal((n_prompts, n_views, dim), dtype=np.float32)
    views = pooled[:, None, :] + (0.8 - 0.6 * depth) * noise
    return tokens, offsets, pooled, views


# ----------------------------------------------------- the naive way


def naive_entropy(z):
    z = z.astype(np.float64)
    gram = z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z
    lam = np.clip(np.linalg.eigvalsh(gram), 0, None)
    p = lam / lam.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def naive_prompt_entropy(tokens, offsets):
    values = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        values.append(0.0 if stop - start == 1 else naive_entropy(tokens[start:stop]))
    return np.array(values)


def naive_effective_rank(z):
    sigma = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = sigma / sigma.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def naive_curvature(tokens, offsets):
    values = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        z = tokens[start:stop].astype(np.float64)
        angles = []
        for k in range(len(z) - 2):
            v_k, v_next = z[k + 1] - z[k], z[k + 2] - z[k + 1]
            cos = v_next @ v_k / (np.linalg.norm(v_next) * np.linalg.norm(v_k))
            angles.append(np.arccos(np.clip(cos, -1.0, 1.0)))
        values.append(np.mean(angles) if angles else np.nan)
    return np.array(values)


def naive_infonce(view_a, view_b, temperature=0.1):
    a = view_a.astype(np.float64)
    b = view_b.astype(np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    logits = a @ b.T / temperature
    positive = np.diag(logits)
    a_to_b = np.mean(logsumexp(logits, axis=1) - positive)
    b_to_a = np.mean(logsumexp(logits, axis=0) - positive)
    return float(0.5 * (a_to_b + b_to_a))


def naive_lidar(views, delta=1e-4):
    x = views.astype(np.float64)
    n, q, dim = x.shape
    grand_mean = x.mean(axis=(0, 1))
    s_b = np.zeros((dim, dim))
    s_w = np.zeros((dim, dim))
    for c in range(n):
        class_mean = x[c].mean(axis=0)
        s_b += np.outer(class_mean - grand_mean, class_mean - grand_mean)
        centred = x[c] - class_mean
        s_w += centred.T @ centred
    s_b /= n
    s_w = s_w / (n * q) + delta * np.eye(dim)

    root_inv = np.linalg.inv(scipy.linalg.sqrtm(s_w).real)
    lam = np.clip(np.linalg.eigvalsh(root_inv @ s_b @ root_inv), 0, None)
    p = lam / lam.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def naive_dime(view_a, view_b, permutations):
    a = view_a.astype(np.float64)
    b = view_b.astype(np.float64)
    k_a = a @ a.T

    def joint_entropy(b_rows):
        joint = k_a * (b_rows @ b_rows.T)
        lam = np.clip(np.linalg.eigh(joint / np.trace(joint))[0], 0, None)
        lam = lam[lam > 0]
        return -(lam * np.log(lam)).sum()

    shuffled = [joint_entropy(b[perm]) for perm in permutations]
    return float(np.mean(shuffled) - joint_entropy(b))


def dime_permutations(n, n_permutations=10, seed=0):
    """The permutations metrics.dime draws, so that both give the same number."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randperm(n, generator=generator).numpy() for _ in range(n_permutations)
    ]


# ------------------------------------------------------------ the run


def run_all(tokens, offsets, pooled, views, fast):
    """{metric: ([wall s, cpu s], value)} for one layer, layerscope or naive."""
    calls = {
        "prompt_entropy": (
            lambda: metrics.prompt_entropy(tokens, offsets),
            lambda: naive_prompt_entropy(tokens, offsets),
        ),
        "curvature": (
            lambda: metrics.curvature(tokens, offsets).values,
            lambda: naive_curvature(tokens, offsets),
        ),
        "dataset_entropy": (
            lambda: metrics.dataset_entropy(pooled),
            lambda: naive_entropy(pooled),
        ),
        "effective_rank": (
            lambda: metrics.effective_rank(pooled),
            lambda: naive_effective_rank(pooled),
        ),
        "infonce": (
            lambda: metrics.infonce(views[:, 0], views[:, 1]),
            lambda: naive_infonce(views[:, 0], views[:, 1]),
        ),
        "lidar": (
            lambda: metrics.lidar(views),
            lambda: naive_lidar(views),
        ),
        "dime": (
            lambda: metrics.dime(views[:, 0], views[:, 1]),
            lambda: naive_dime(views[:, 0], views[:, 1], dime_permutations(len(views))),
        ),
    }
    results = {}
    for name in METRICS:
        call = calls[name][0 if fast else 1]
        wall, cpu = time.perf_counter(), time.process_time()
        value = call()
        seconds = np.array([time.perf_counter() - wall, time.process_time() - cpu])
        results[name] = (seconds, np.asarray(value))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--min-tokens", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--naive-layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="BLAS/OpenMP threads of both sides"
    )
    parser.add_argument(
        "--quick", action="store_true", help="6 layers, 200 prompts, dim 128"
    )
    args = parser.parse_args()
    if args.quick:
        args.layers, args.prompts, args.dim, args.naive_layers = 6, 200, 128, 2
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(args.min_tokens, args.max_tokens + 1, args.prompts)
    naive_at = set(
        np.linspace(0, args.layers - 1, min(args.naive_layers, args.layers))
        .round()
        .astype(int)
        .tolist()
    )
    print(
        f"store: {args.layers} layers x {args.prompts} prompts "
        f"({args.min_tokens}-{args.max_tokens} tokens, {lengths.sum()} in all), "
        f"dim {args.dim}, {args.views} views a prompt"
    )
    print(
        f"torch {torch.__version__} on "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}, "
        f"{torch.get_num_threads()} threads; naive on layers {sorted(naive_at)}"
    )

    warm = make_layer(0, 2, np.array([3, 4]), 8, 2, args.seed)
    run_all(*warm, fast=True)

    fast_time = {name: np.zeros(2) for name in METRICS}  # wall, cpu
    naive_time = {name: np.zeros(2) for name in METRICS}
    largest_diff = dict.fromkeys(METRICS, 0.0)
    for layer in range(args.layers):
        arrays = make_layer(
            layer, args.layers, lengths, args.dim, args.views, args.seed
        )
        fast = run_all(*arrays, fast=True)
        for name, (seconds, _) in fast.items():
            fast_time[name] += seconds
        if layer in naive_at:
            naive = run_all(*arrays, fast=False)
            for name, (seconds, value) in naive.items():
                naive_time[name] += seconds
                diff = np.nanmax(np.abs(value - fast[name][1]))
                largest_diff[name] = max(largest_diff[name], float(diff))
        print(f"  layer {layer:2d} done", flush=True)

    print_table(fast_time, naive_time, largest_diff, args.layers, len(naive_at))


def print_table(fast_time, naive_time, largest_diff, n_layers, n_naive):
    """Wall seconds a layer and speed-ups by wall and by CPU time of the process.

    CPU time is the fairer clock on a shared machine, with --threads 1: other
    processes then cannot inflate either side.
    """
    print(
        f"\nseconds a layer (wall); naive measured on {n_naive} layers, "
        f"layerscope on all {n_layers}"
    )
    header = (
        f"{'metric':<16}{'layerscope':>11}{'naive':>9}"
        f"{'speed-up':>10}{'(cpu)':>8}{'max |diff|':>12}"
    )
    print(header)
    print("-" * len(header))
    rows = [(name, fast_time[name], naive_time[name]) for name in METRICS]
    rows.append(("all metrics", sum(fast_time.values()), sum(naive_time.values())))
    for name, fast, naive in rows:
        fast, naive = fast / n_layers, naive / n_naive
        diff = f"{largest_diff[name]:>12.1e}" if name in largest_diff else ""
        print(
            f"{name:<16}{fast[0]:>11.3f}{naive[0]:>9.3f}"
            f"{naive[0] / fast[0]:>9.1f}x{naive[1] / fast[1]:>7.1f}x{diff}"
        )

    fast = sum(fast_time.values()) / n_layers
    naive = sum(naive_time.values()) / n_naive
    print(
        f"\nwhole store ({n_layers} layers, wall): "
        f"layerscope {fast[0] * n_layers:.1f} s measured, "
        f"naive {naive[0] * n_layers:.1f} s scaled from {n_naive} layers"
    )


if __name__ == "__main__":
    main()
