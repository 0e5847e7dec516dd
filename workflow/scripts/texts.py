from layerscope.logs import log_to
from layerscope.texts import build_source

log_to(snakemake.log[0])
build_source(snakemake.wildcards.source, snakemake.params.spec, snakemake.output[0])
