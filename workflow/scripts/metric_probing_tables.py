from layerscope.logs import log_to
from layerscope.tables import (
    correlations,
    layer_choice,
    read_metrics,
    read_probing,
    write_csv,
)

log_to(snakemake.log[0])
metrics = read_metrics(snakemake.input.metrics)
probing = read_probing(snakemake.input.probing)
write_csv(correlations(metrics, probing), snakemake.output.correlations)
write_csv(layer_choice(metrics, probing), snakemake.output.layer_choice)
