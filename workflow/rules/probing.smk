rule task_texts:
    input:
        code=lib("tasktexts.py", "tasks.py", "texts.py"),
    output:
        f"{RESULTS}/texts/tasks/{{task}}.parquet",
    log:
        f"{RESULTS}/logs/task_texts/{{task}}.log",
    params:
        entry=task_entry,
        hub_offline=config["probing"]["hub_offline"],
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/task_texts.py"


rule probe:
    input:
        store=f"{RESULTS}/activations/{{model}}/tasks/{{task}}.zarr",
        texts=f"{RESULTS}/texts/tasks/{{task}}.parquet",
        code=lib("probing.py", "tasktexts.py", "tasks.py", "store.py"),
    output:
        scores=f"{RESULTS}/probing/{{model}}/{{task}}.parquet",
        mteb=directory(f"{RESULTS}/probing/{{model}}/{{task}}.mteb"),
    log:
        f"{RESULTS}/logs/probe/{{model}}/{{task}}.log",
    params:
        entry=task_entry,
        pooling=config["probing"]["pooling"],
        hub_offline=config["probing"]["hub_offline"],
    threads: 1
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/probe.py"
