import torch

from layerscope.extract import dump
from layerscope.logs import log_to
from layerscope.texts import read_texts

log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
texts, text_hash = read_texts(snakemake.input.texts)
dump(
    snakemake.params.spec,
    texts["text"].tolist(),
    snakemake.output[0],
    model_name=snakemake.wildcards.model,
    source_name=snakemake.wildcards.textset,
    text_hash=text_hash,
    store_tokens=snakemake.params.tokens,
)
