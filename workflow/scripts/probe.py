from layerscope import open_store
from layerscope.logs import log_to
from layerscope.probing import probe_store, write_probe
from layerscope.tasktexts import offline_mode
from layerscope.texts import read_texts

log_to(snakemake.log[0])
if snakemake.params.hub_offline:
    offline_mode()
frame = probe_store(
    open_store(snakemake.input.store),
    read_texts(snakemake.input.texts)[0]["text"].tolist(),
    snakemake.params.entry,
    model=snakemake.wildcards.model,
    pooling=snakemake.params.pooling,
    output_folder=snakemake.output.mteb,
)
write_probe(frame, snakemake.output.scores)
