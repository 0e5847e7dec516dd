import pandas as pd

from layerscope import figures
from layerscope.logs import log_to
from layerscope.tables import read_metrics, read_probing

log_to(snakemake.log[0])
stem = snakemake.output[0].removesuffix(".png")
rule = snakemake.rule

if rule == "figure_metrics":
    metrics = read_metrics(snakemake.input.metrics)
    source = snakemake.wildcards.source
    figures.plot_metrics_vs_depth(metrics, stem, snakemake.params.models, source)
elif rule == "figure_prompt_entropy":
    metrics = read_metrics([snakemake.input.metrics])
    model, source = snakemake.wildcards.model, snakemake.wildcards.source
    figures.plot_prompt_entropy_hist(metrics, stem, model, source)
elif rule == "figure_scores":
    probing = read_probing(snakemake.input.probing)
    figures.plot_score_vs_depth(probing, stem, snakemake.params.models)
    stem = snakemake.output.best_vs_last[0].removesuffix(".png")
    figures.plot_best_vs_last(probing, stem, snakemake.params.models)
elif rule == "figure_task_heatmap":
    probing = read_probing(snakemake.input.probing)
    figures.plot_task_heatmap(probing, stem, snakemake.wildcards.model)
elif rule == "figure_correlations":
    correlations = pd.read_csv(snakemake.input.correlations)
    figures.plot_correlations(correlations, stem, snakemake.params.models)
