from layerscope.logs import log_to
from layerscope.tables import best_layers, read_probing, write_csv

log_to(snakemake.log[0])
probing = read_probing(snakemake.input.probing)
write_csv(probing, snakemake.output.probing)
write_csv(best_layers(probing), snakemake.output.best_layers)
