localrules:
    metrics_table,
    probing_tables,
    metric_probing_tables,
    figure_metrics,
    figure_prompt_entropy,
    figure_scores,
    figure_task_heatmap,
    figure_correlations,


rule metrics_table:
    input:
        metrics=all_metrics(),
        code=lib("tables.py"),
    output:
        metrics=report(
            f"{RESULTS}/tables/metrics.csv",
            caption="../report/metrics_table.rst",
            category="Tables",
        ),
        per_prompt=f"{RESULTS}/tables/metrics_per_prompt.csv",
    log:
        f"{RESULTS}/logs/tables/metrics.log",
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/metrics_table.py"


rule probing_tables:
    input:
        probing=all_probes(),
        code=lib("tables.py"),
    output:
        probing=report(
            f"{RESULTS}/tables/probing.csv",
            caption="../report/probing_table.rst",
            category="Tables",
        ),
        best_layers=report(
            f"{RESULTS}/tables/best_layers.csv",
            caption="../report/best_layers.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/tables/probing.log",
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/probing_tables.py"


rule metric_probing_tables:
    input:
        metrics=all_metrics(),
        probing=all_probes(),
        code=lib("tables.py"),
    output:
        correlations=report(
            f"{RESULTS}/tables/correlations.csv",
            caption="../report/correlations.rst",
            category="Tables",
        ),
        layer_choice=report(
            f"{RESULTS}/tables/layer_choice.csv",
            caption="../report/layer_choice.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/tables/metric_probing.log",
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/metric_probing_tables.py"


rule figure_metrics:
    input:
        metrics=metrics_of_source,
        code=lib("figures.py"),
    output:
        report(
            multiext(f"{RESULTS}/figures/metrics_{{source}}", ".png", ".pdf"),
            caption="../report/figure_metrics.rst",
            category="Metrics",
        ),
    log:
        f"{RESULTS}/logs/figures/metrics_{{source}}.log",
    params:
        models=model_order(),
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/figure.py"


rule figure_prompt_entropy:
    input:
        metrics=f"{RESULTS}/metrics/{{model}}/{{source}}/prompt_entropy.parquet",
        code=lib("figures.py"),
    output:
        report(
            multiext(
                f"{RESULTS}/figures/{{model}}/prompt_entropy_{{source}}", ".png", ".pdf"
            ),
            caption="../report/figure_prompt_entropy.rst",
            category="Metrics",
        ),
    log:
        f"{RESULTS}/logs/figures/{{model}}/prompt_entropy_{{source}}.log",
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/figure.py"


rule figure_scores:
    input:
        probing=all_probes(),
        code=lib("figures.py"),
    output:
        score_vs_depth=report(
            multiext(f"{RESULTS}/figures/score_vs_depth", ".png", ".pdf"),
            caption="../report/figure_score_vs_depth.rst",
            category="Probing",
        ),
        best_vs_last=report(
            multiext(f"{RESULTS}/figures/best_vs_last", ".png", ".pdf"),
            caption="../report/figure_best_vs_last.rst",
            category="Probing",
        ),
    log:
        f"{RESULTS}/logs/figures/scores.log",
    params:
        models=model_order(),
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/figure.py"


rule figure_task_heatmap:
    input:
        probing=lambda wildcards: [
            f"{RESULTS}/probing/{wildcards.model}/{task}.parquet" for task in TASKS
        ],
        code=lib("figures.py"),
    output:
        report(
            multiext(f"{RESULTS}/figures/{{model}}/task_heatmap", ".png", ".pdf"),
            caption="../report/figure_task_heatmap.rst",
            category="Probing",
        ),
    log:
        f"{RESULTS}/logs/figures/{{model}}/task_heatmap.log",
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/figure.py"


rule figure_correlations:
    input:
        correlations=f"{RESULTS}/tables/correlations.csv",
        code=lib("figures.py"),
    output:
        report(
            multiext(f"{RESULTS}/figures/correlations", ".png", ".pdf"),
            caption="../report/figure_correlations.rst",
            category="Metrics and probing",
        ),
    log:
        f"{RESULTS}/logs/figures/correlations.log",
    params:
        models=model_order(),
    conda:
        "../../envs/layerscope.yaml"
    script:
        "../scripts/figure.py"
