import torch
from threadpoolctl import threadpool_limits

from layerscope import open_store
from layerscope.logs import log_to
from layerscope.measure import measure, write_metric
from layerscope.texts import read_texts

log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
threadpool_limits(snakemake.threads)  # BLAS: the job's cores, not the node's
layout = (
    read_texts(snakemake.input.views)[0] if "views" in snakemake.input.keys() else None
)
frame = measure(
    snakemake.wildcards.metric,
    open_store(snakemake.input.store),
    snakemake.params.spec,
    model=snakemake.wildcards.model,
    source=snakemake.wildcards.source,
    layout=layout,
)
write_metric(frame, snakemake.output[0])
