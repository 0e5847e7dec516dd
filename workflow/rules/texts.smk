rule texts:
    input:
        code=lib("texts.py"),
        files=source_files,
    output:
        f"{RESULTS}/texts/{{source}}.parquet",
    log:
        f"{RESULTS}/logs/texts/{{source}}.log",
    params:
        spec=source_spec,
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/texts.py"
