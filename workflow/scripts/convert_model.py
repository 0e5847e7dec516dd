from layerscope.logs import log_to
from layerscope.models import save_pretrained_copy

log_to(snakemake.log[0])
save_pretrained_copy(snakemake.params.spec, snakemake.output[0])
