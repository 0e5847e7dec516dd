rule convert_model:
    input:
        code=lib("models.py"),
    output:
        directory(f"{RESULTS}/models/{{model}}"),
    log:
        f"{RESULTS}/logs/convert_model/{{model}}.log",
    params:
        spec=model_settings,
    resources:
        mem_mb=dump_mem_mb,
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/convert_model.py"


# One rule for every text set: a source, its views (views/{source}) and the
# texts of a task (tasks/{task}).
rule dump:
    input:
        texts=f"{RESULTS}/texts/{{textset}}.parquet",
        model=converted_model,
        code=lib("extract.py", "models.py", "store.py"),
    output:
        directory(f"{RESULTS}/activations/{{model}}/{{textset}}.zarr"),
    log:
        f"{RESULTS}/logs/dump/{{model}}/{{textset}}.log",
    params:
        spec=dump_spec,
        tokens=stores_tokens,
    threads: 2
    resources:
        mem_mb=dump_mem_mb,
        runtime=dump_runtime,
        gpu=1,
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/dump.py"
