"""Every metric of a synthetic store, layerscope against the loop way, side by side.

A store of ``--layers`` layers of ``--prompts`` prompts (``--min-tokens`` to
``--max-tokens`` tokens each, ``--dim`` features, ``--views`` augmented views
a prompt) is generated one layer at a time, so memory stays at one layer.
Every metric of every layer is computed with layerscope.metrics, and on
``--baseline-layers`` evenly spaced layers by two baselines, whose time is
scaled to the whole store:

- ``loop``, the reference: the straightforward per-prompt, per-layer loop, the
  way the Layer-by-Layer research code computes each metric, in torch
  float64 on ``--device``. A prompt at a time: its Gram matrix and a full
  ``eigh``, as its entropy helper does; a Python loop over the tokens of a
  prompt for curvature, one angle at a time; an outer product a prompt and
  one a (prompt, view) for LiDAR's scatter matrices, then ``eigh`` for the
  inverse square root and the spectrum; one ``eigh`` of the n x n joint Gram
  a permutation for DiME; one logit matrix a layer for InfoNCE. The research
  code's faults (clamped Gram entries, angles between tokens, permuted
  features) are fixed so that the values agree.
- ``numpy``: a stronger baseline that still loops over prompts (and over the
  classes of LiDAR) but vectorises within each, in numpy float64 with
  eigenvalues only (``eigvalsh``).

All sides run in the same process on the same arrays; the largest difference
between a baseline's values and layerscope's is printed beside the times.
Also printed: the floors, the two dense kernels that no rewrite of these
metrics in float64 avoids (DiME's 1 + permutations eigenvalue problems of
size n x n, LiDAR's within-class scatter ``W^T W`` over n * views rows), and
the speed-up they leave room for.

    python benchmarks/bench_metrics.py --threads 1   # the full store, ~3 min on a CPU
    python benchmarks/bench_metrics.py --quick       # a small store, seconds
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
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
BASELINES = ("loop", "numpy")
N_PERMUTATIONS = 10


# ------------------------------------------------------------ the store


def make_layer(layer, n_layers, lengths, dim, n_views, seed):
    """One layer: tokens (n_tokens, dim), offsets, pooled (n_prompts, dim), views.

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


def dime_permutations(n, n_permutations=N_PERMUTATIONS, seed=0):
    """The permutations metrics.dime draws, so that all sides give one number."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator) for _ in range(n_permutations)]


def prompt_by_prompt(entropy, tokens, offsets):
    """``entropy`` of each prompt's tokens in turn, 0 for a one-token prompt."""
    values = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        values.append(0.0 if stop - start == 1 else entropy(tokens[start:stop]))
    return np.array(values)


# ------------------------------ baseline "loop": the research code's way


def _shannon(lam):
    lam = lam[lam > 0]
    return -(lam * torch.log(lam)).sum()


def loop_entropy(z):
    """S_1 of one matrix: its smaller Gram, trace-normalised, a full eigh."""
    n, d = z.shape
    gram = z @ z.T if n <= d else z.T @ z
    lam, _ = torch.linalg.eigh(gram / torch.trace(gram))
    return float(_shannon(lam))


def loop_curvature(tokens, offsets):
    values = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        total, count = 0.0, 0
        for k in range(start + 1, stop - 1):
            v_k, v_next = tokens[k] - tokens[k - 1], tokens[k + 1] - tokens[k]
            cos = (v_next @ v_k) / (torch.norm(v_next) * torch.norm(v_k))
            total += torch.arccos(torch.clamp(cos, -1.0, 1.0)).item()
            count += 1
        values.append(total / count if count else np.nan)
    return np.array(values)


def loop_effective_rank(pooled):
    sigma = torch.linalg.svdvals(pooled)
    return float(torch.exp(_shannon(sigma / sigma.sum())))


def loop_infonce(view_a, view_b, temperature=0.1):
    a, b = F.normalize(view_a, dim=1), F.normalize(view_b, dim=1)
    logits = a @ b.T / temperature
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * float(
        F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
    )


def loop_lidar(views, delta=1e-4):
    n, q, dim = views.shape
    grand_mean = views.mean(dim=(0, 1))
    class_means = views.mean(dim=1)
    s_b = torch.zeros(dim, dim, dtype=views.dtype, device=views.device)
    for c in range(n):
        s_b += torch.outer(class_means[c] - grand_mean, class_means[c] - grand_mean)
    s_b /= n
    s_w = torch.zeros(dim, dim, dtype=views.dtype, device=views.device)
    for c in range(n):
        for v in range(q):
            deviation = views[c, v] - class_means[c]
            s_w += torch.outer(deviation, deviation)
    s_w = s_w / (n * q) + delta * torch.eye(dim, dtype=views.dtype, device=views.device)

    w, vectors = torch.linalg.eigh(s_w)
    root_inv = vectors @ torch.diag(w**-0.5) @ vectors.T
    lam, _ = torch.linalg.eigh(root_inv @ s_b @ root_inv)
    lam = lam.clamp_min(0)
    return float(torch.exp(_shannon(lam / lam.sum())))


def loop_dime(view_a, view_b, permutations):
    k_a, k_b = view_a @ view_a.T, view_b @ view_b.T

    def joint_entropy(k_b_rows):
        joint = k_a * k_b_rows
        lam, _ = torch.linalg.eigh(joint / torch.trace(joint))
        return float(_shannon(lam))

    shuffled = [joint_entropy(k_b[perm][:, perm]) for perm in permutations]
    return float(np.mean(shuffled) - joint_entropy(k_b))


# ------------------------------------ baseline "numpy": a loop over prompts


def numpy_entropy(z):
    gram = z @ z.T if z.shape[0] <= z.shape[1] else z.T @ z
    return _numpy_shannon(np.linalg.eigvalsh(gram))


def _numpy_shannon(lam):
    lam = np.clip(lam, 0, None)
    p = lam / lam.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def numpy_curvature(tokens, offsets):
    values = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        steps = np.diff(tokens[start:stop], axis=0)  # (length - 1, dim)
        if len(steps) < 2:
            values.append(np.nan)
            continue
        norms = np.linalg.norm(steps, axis=1)
        cos = (steps[1:] * steps[:-1]).sum(1) / (norms[1:] * norms[:-1])
        values.append(np.arccos(np.clip(cos, -1.0, 1.0)).mean())
    return np.array(values)


def numpy_effective_rank(z):
    sigma = np.linalg.svd(z, compute_uv=False)
    return float(np.exp(_numpy_shannon(sigma)))


def numpy_infonce(view_a, view_b, temperature=0.1):
    a = view_a / np.linalg.norm(view_a, axis=1, keepdims=True)
    b = view_b / np.linalg.norm(view_b, axis=1, keepdims=True)
    logits = a @ b.T / temperature
    positive = np.diag(logits)
    a_to_b = np.mean(np.log(np.exp(logits).sum(1)) - positive)
    b_to_a = np.mean(np.log(np.exp(logits).sum(0)) - positive)
    return float(0.5 * (a_to_b + b_to_a))


def numpy_lidar(views, delta=1e-4):
    n, q, dim = views.shape
    class_means = views.mean(axis=1)
    between = class_means - class_means.mean(axis=0)
    s_b = between.T @ between / n
    s_w = np.zeros((dim, dim))
    for c in range(n):
        centred = views[c] - class_means[c]
        s_w += centred.T @ centred
    s_w = s_w / (n * q) + delta * np.eye(dim)

    w, vectors = np.linalg.eigh(s_w)
    root_inv = (vectors / np.sqrt(w)) @ vectors.T
    return float(np.exp(_numpy_shannon(np.linalg.eigvalsh(root_inv @ s_b @ root_inv))))


def numpy_dime(view_a, view_b, permutations):
    k_a, k_b = view_a @ view_a.T, view_b @ view_b.T

    def joint_entropy(k_b_rows):
        return _numpy_shannon(np.linalg.eigvalsh(k_a * k_b_rows))

    shuffled = [joint_entropy(k_b[np.ix_(perm, perm)]) for perm in permutations]
    return float(np.mean(shuffled) - joint_entropy(k_b))


# ------------------------------------------------------------ the floors


def floor_dime(view_a, view_b):
    """The 1 + N_PERMUTATIONS dense n x n eigenvalue problems of DiME.

    Through the kernels layerscope calls (numpy's LAPACK on the CPU, torch on
    a GPU); the tensors are float64 on layerscope's device.
    """
    joint = metrics._matmul(view_a, view_a.mT) * metrics._matmul(view_b, view_b.mT)
    for _ in range(1 + N_PERMUTATIONS):
        lam = metrics._eigvalsh(joint)
    return float(lam.sum())


def floor_lidar(within):
    """The within-class scatter W^T W, W the (n * views, dim) centred views."""
    return float(metrics._matmul(within.mT, within).sum())


# ------------------------------------------------------------ the run


def calls(tokens, offsets, pooled, views, device):
    """{side: {metric: a call returning its value}} for one layer.

    layerscope gets the float32 arrays of the store, as the workflow hands
    them over; each baseline gets them already in float64 on its device, so
    that no conversion is counted against it.
    """
    a, b = views[:, 0], views[:, 1]
    permutations = dime_permutations(len(views))
    t = {
        name: torch.from_numpy(array.astype(np.float64)).to(device)
        for name, array in (("tokens", tokens), ("pooled", pooled), ("views", views))
    }
    t_perms = [perm.to(device) for perm in permutations]
    n64 = {
        name: array.astype(np.float64)
        for name, array in (("tokens", tokens), ("pooled", pooled), ("views", views))
    }
    n_perms = [perm.numpy() for perm in permutations]
    on_device = torch.from_numpy(n64["views"]).to(metrics._device())
    within = (on_device - on_device.mean(1, keepdim=True)).flatten(0, 1)
    return {
        "layerscope": {
            "prompt_entropy": lambda: metrics.prompt_entropy(tokens, offsets),
            "curvature": lambda: metrics.curvature(tokens, offsets).values,
            "dataset_entropy": lambda: metrics.dataset_entropy(pooled),
            "effective_rank": lambda: metrics.effective_rank(pooled),
            "infonce": lambda: metrics.infonce(a, b),
            "lidar": lambda: metrics.lidar(views),
            "dime": lambda: metrics.dime(a, b, n_permutations=N_PERMUTATIONS),
        },
        "loop": {
            "prompt_entropy": lambda: prompt_by_prompt(
                loop_entropy, t["tokens"], offsets
            ),
            "curvature": lambda: loop_curvature(t["tokens"], offsets),
            "dataset_entropy": lambda: loop_entropy(t["pooled"]),
            "effective_rank": lambda: loop_effective_rank(t["pooled"]),
            "infonce": lambda: loop_infonce(t["views"][:, 0], t["views"][:, 1]),
            "lidar": lambda: loop_lidar(t["views"]),
            "dime": lambda: loop_dime(t["views"][:, 0], t["views"][:, 1], t_perms),
        },
        "numpy": {
            "prompt_entropy": lambda: prompt_by_prompt(
                numpy_entropy, n64["tokens"], offsets
            ),
            "curvature": lambda: numpy_curvature(n64["tokens"], offsets),
            "dataset_entropy": lambda: numpy_entropy(n64["pooled"]),
            "effective_rank": lambda: numpy_effective_rank(n64["pooled"]),
            "infonce": lambda: numpy_infonce(n64["views"][:, 0], n64["views"][:, 1]),
            "lidar": lambda: numpy_lidar(n64["views"]),
            "dime": lambda: numpy_dime(n64["views"][:, 0], n64["views"][:, 1], n_perms),
        },
        "floor": {
            "lidar": lambda: floor_lidar(within),
            "dime": lambda: floor_dime(on_device[:, 0], on_device[:, 1]),
        },
    }


def timed(side_calls):
    """{metric: ([wall s, cpu s], value)} for one side on one layer."""
    results = {}
    for name, call in side_calls.items():
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
    parser.add_argument("--baseline-layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="BLAS/OpenMP threads of all sides"
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device of the loop baseline (layerscope takes CUDA when present)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="6 layers, 200 prompts, dim 128"
    )
    args = parser.parse_args()
    if args.quick:
        args.layers, args.prompts, args.dim, args.baseline_layers = 6, 200, 128, 2
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(args.min_tokens, args.max_tokens + 1, args.prompts)
    baseline_at = set(
        np.linspace(0, args.layers - 1, min(args.baseline_layers, args.layers))
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
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; layerscope "
        f"on {metrics._device()}, loop on {args.device}; "
        f"baselines on layers {sorted(baseline_at)}"
    )

    warm = make_layer(0, 2, np.array([3, 4, 5]), 8, 2, args.seed)
    for side_calls in calls(*warm, args.device).values():
        timed(side_calls)

    sides = ("layerscope", *BASELINES, "floor")
    times = {side: {} for side in sides}
    largest_diff = {side: dict.fromkeys(METRICS, 0.0) for side in BASELINES}
    for layer in range(args.layers):
        arrays = make_layer(
            layer, args.layers, lengths, args.dim, args.views, args.seed
        )
        layer_calls = calls(*arrays, args.device)
        fast = timed(layer_calls["layerscope"])
        _add(times["layerscope"], fast)
        if layer in baseline_at:
            for side in (*BASELINES, "floor"):
                results = timed(layer_calls[side])
                _add(times[side], results)
                if side == "floor":
                    continue
                for name, (_, value) in results.items():
                    diff = float(np.nanmax(np.abs(value - fast[name][1])))
                    largest_diff[side][name] = max(largest_diff[side][name], diff)
        print(f"  layer {layer:2d} done", flush=True)

    counts = {side: len(baseline_at) for side in sides} | {"layerscope": args.layers}
    per_layer = {
        side: {name: seconds / counts[side] for name, seconds in times[side].items()}
        for side in sides
    }
    print_table(per_layer, largest_diff, args.layers, len(baseline_at))


def _add(totals, results):
    for name, (seconds, _) in results.items():
        totals[name] = totals.get(name, 0.0) + seconds


def print_table(per_layer, largest_diff, n_layers, n_baseline):
    """Seconds a layer and speed-ups by wall clock and by CPU time of the process.

    CPU time is the fairer clock on a shared machine, with --threads 1: other
    processes then cannot inflate either side.
    """
    for side in per_layer.values():
        side["all metrics"] = sum(side.values())
    print(
        f"\nseconds a layer (wall); baselines measured on {n_baseline} layers, "
        f"layerscope on all {n_layers}; speed-up by wall (by cpu)"
    )
    header = f"{'metric':<16}{'layerscope':>11}" + "".join(
        f"{side:>9}{'speed-up':>16}{'max |diff|':>11}" for side in BASELINES
    )
    print(header)
    print("-" * len(header))
    for name in (*METRICS, "all metrics"):
        fast = per_layer["layerscope"][name]
        row = f"{name:<16}{fast[0]:>11.3f}"
        for side in BASELINES:
            slow = per_layer[side][name]
            ratio = f"{slow[0] / fast[0]:.1f}x ({slow[1] / fast[1]:.1f}x)"
            diff = largest_diff[side].get(name)
            row += f"{slow[0]:>9.3f}{ratio:>16}"
            row += f"{diff:>11.1e}" if diff is not None else " " * 11
        print(row)

    floor, loop = per_layer["floor"], per_layer["loop"]
    print(
        f"\nfloors a layer (wall): DiME's {1 + N_PERMUTATIONS} n x n eigvalsh "
        f"{floor['dime'][0]:.3f} s, LiDAR's W^T W {floor['lidar'][0]:.3f} s. "
        f"Against the loop they leave room for at most "
        f"{loop['lidar'][0] / floor['lidar'][0]:.0f}x on LiDAR and "
        f"{loop['all metrics'][0] / floor['all metrics'][0]:.0f}x on all metrics."
    )
    print(
        f"whole store ({n_layers} layers, wall): "
        + ", ".join(
            f"{side} {per_layer[side]['all metrics'][0] * n_layers:.1f} s"
            for side in ("layerscope", *BASELINES)
        )
    )


if __name__ == "__main__":
    main()
