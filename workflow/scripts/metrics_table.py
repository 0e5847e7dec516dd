from layerscope.logs import log_to
from layerscope.tables import metrics_table, per_prompt_table, read_metrics, write_csv

log_to(snakemake.log[0])
metrics = read_metrics(snakemake.input.metrics)
write_csv(metrics_table(metrics), snakemake.output.metrics)
write_csv(per_prompt_table(metrics), snakemake.output.per_prompt)
