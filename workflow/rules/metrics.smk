rule augment:
    input:
        texts=f"{RESULTS}/texts/{{source}}.parquet",
        code=lib("augment.py", "texts.py"),
    output:
        f"{RESULTS}/texts/views/{{source}}.parquet",
    log:
        f"{RESULTS}/logs/augment/{{source}}.log",
    params:
        n_prompts=config["augment"]["n"],
        n_views=N_VIEWS,
        seed=config["augment"]["seed"],
        recipe=config["augment"]["recipe"],
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/augment.py"


rule dump_views:
    input:
        texts=f"{RESULTS}/texts/views/{{source}}.parquet",
        model=converted_model,
        code=lib("extract.py", "models.py", "store.py"),
    output:
        directory(f"{RESULTS}/activations/{{model}}/views/{{source}}.zarr"),
    log:
        f"{RESULTS}/logs/dump_views/{{model}}/{{source}}.log",
    params:
        spec=dump_spec,
        tokens=False,
    threads: 2
    resources:
        mem_mb=dump_mem_mb,
        runtime=dump_runtime,
        gpu=1,
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/dump.py"


rule metric:
    input:
        unpack(metric_inputs),
        code=lib("metrics.py", "measure.py", "store.py"),
    output:
        f"{RESULTS}/metrics/{{model}}/{{source}}/{{metric}}.parquet",
    log:
        f"{RESULTS}/logs/metric/{{model}}/{{source}}/{{metric}}.log",
    params:
        spec=lambda wildcards: config["metrics"][wildcards.metric],
    threads: 2
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/metric.py"
