from layerscope.logs import log_to
from layerscope.texts import build_views

log_to(snakemake.log[0])
build_views(
    snakemake.input.texts,
    snakemake.output[0],
    n_prompts=snakemake.params.n_prompts,
    n_views=snakemake.params.n_views,
    seed=snakemake.params.seed,
    recipe=snakemake.params.recipe,
)
