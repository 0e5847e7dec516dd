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
