from layerscope.logs import log_to
from layerscope.tasktexts import build_task_texts, offline_mode

log_to(snakemake.log[0])
if snakemake.params.hub_offline:
    offline_mode()
build_task_texts(snakemake.params.entry, snakemake.output[0])
