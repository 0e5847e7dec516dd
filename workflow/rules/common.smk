import os
from pathlib import Path

from layerscope.models import resolve_source

RESULTS = config["results"]
MODELS = config["models"]
SOURCES = config["sources"]
LIBRARY = Path(workflow.basedir) / "src" / "layerscope"


NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"


def lib(*modules):
    """Library modules a job runs, as inputs: editing one reruns those jobs."""
    return [str(LIBRARY / module) for module in modules]


def source_spec(wildcards):
    return SOURCES[wildcards.source]


def source_files(wildcards):
    """Local files a source reads, so that changing them reruns its texts job."""
    spec = SOURCES[wildcards.source]
    if "path" in spec:
        return [spec["path"]]
    if "builtin" in spec:
        return sorted(str(p) for p in (LIBRARY / "data" / "corpora").glob(f"{spec['builtin']}.*"))
    return []


def needs_conversion(model):
    """GGUF checkpoints are de-quantised once into a safetensors copy."""
    spec = MODELS[model]
    resolved = resolve_source(spec["source"], spec["gguf_file"])
    return resolved.gguf_file is not None and not spec["random_init"]


def converted_model(wildcards):
    if needs_conversion(wildcards.model):
        return [f"{RESULTS}/models/{wildcards.model}"]
    return []


def model_settings(wildcards):
    """A model entry without its scheduler resources, which change no result."""
    scheduling = ("mem_mb", "runtime")
    return {k: v for k, v in MODELS[wildcards.model].items() if k not in scheduling}


def dump_spec(wildcards):
    """The model entry the dump job runs; a converted GGUF is read from its copy."""
    spec = model_settings(wildcards)
    if needs_conversion(wildcards.model):
        copy = f"{RESULTS}/models/{wildcards.model}"
        spec.update(source=copy if os.path.isabs(copy) else f"./{copy}", gguf_file=None)
    return spec


def stores_tokens(wildcards):
    """Token vectors are kept for sources that ask; views and tasks are pooled."""
    source = SOURCES.get(wildcards.textset)
    return bool(source and source["tokens"])


def dump_mem_mb(wildcards):
    return MODELS[wildcards.model]["mem_mb"]


def dump_runtime(wildcards):
    return MODELS[wildcards.model]["runtime"]


def store_path(model, source):
    return f"{RESULTS}/activations/{model}/{source}.zarr"


def all_stores():
    return [store_path(model, source) for model in MODELS for source in SOURCES]


METRICS = config["metrics"]["run"]
TOKEN_METRICS = ("prompt_entropy", "curvature")
VIEW_METRICS = ("infonce", "lidar", "dime")
N_VIEWS = max(
    [2 for m in ("infonce", "dime") if m in METRICS]
    + [config["metrics"]["lidar"]["views"] for m in ("lidar",) if m in METRICS]
    + [0]
)


def metric_inputs(wildcards):
    """A metric reads the views' store, or the source's own store."""
    if wildcards.metric in VIEW_METRICS:
        return {
            "store": f"{RESULTS}/activations/{wildcards.model}/views/{wildcards.source}.zarr",
            "views": f"{RESULTS}/texts/views/{wildcards.source}.parquet",
        }
    return {"store": store_path(wildcards.model, wildcards.source)}


def measured_sources():
    chosen = config["metrics"]["sources"]
    return list(SOURCES) if chosen is None else chosen


def all_metrics():
    """Token metrics run on the sources that store tokens, the others on all."""
    return [
        f"{RESULTS}/metrics/{model}/{source}/{metric}.parquet"
        for model in MODELS
        for source in measured_sources()
        for metric in METRICS
        if metric not in TOKEN_METRICS or SOURCES[source]["tokens"]
    ]


TASKS = config["tasks"]


def task_entry(wildcards):
    """The entry probing.resolve_task takes: the task's name and its filters."""
    spec = TASKS[wildcards.task]
    return {
        "name": spec["task"] or wildcards.task,
        "splits": spec["splits"],
        "subsets": spec["subsets"],
    }


def all_probes():
    return [f"{RESULTS}/probing/{model}/{task}.parquet" for model in MODELS for task in TASKS]


def model_order():
    """Models in config order: fixes each model's colour in every figure."""
    return list(MODELS)


def metrics_of_source(wildcards):
    return [path for path in all_metrics() if f"/{wildcards.source}/" in path]


def all_reports():
    """Tables and figures for what the config measures and probes."""
    targets, figures = [], f"{RESULTS}/figures"
    if all_metrics():
        targets.append(f"{RESULTS}/tables/metrics.csv")
        targets += [f"{figures}/metrics_{source}.png" for source in measured_sources()]
        if "prompt_entropy" in METRICS:
            targets += [
                f"{figures}/{model}/prompt_entropy_{source}.png"
                for model in MODELS
                for source in measured_sources()
                if SOURCES[source]["tokens"]
            ]
    if all_probes():
        targets.append(f"{RESULTS}/tables/best_layers.csv")
        targets += [f"{figures}/score_vs_depth.png"]
        targets += [f"{figures}/{model}/task_heatmap.png" for model in MODELS]
    if all_metrics() and all_probes():
        targets += [f"{RESULTS}/tables/layer_choice.csv", f"{figures}/correlations.png"]
    return targets
