# layerscope: dump every layer of every model once, then measure and probe it.
# Usage: snakemake --cores 8            (config.yaml, profiles/default)
#        snakemake --profile profiles/slurm   (a SLURM cluster, README "Cluster")
from pathlib import Path

from snakemake.utils import min_version

from layerscope.config import validate_config

min_version("9.0")


report: "workflow/report/workflow.rst"


configfile: "config.yaml"


config.update(
    validate_config(config, Path(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
)


include: "workflow/rules/common.smk"


wildcard_constraints:
    model=NAME,
    source=NAME,
    task=NAME,
    textset=rf"((views|tasks)/)?{NAME}",
    metric="|".join(METRICS) or "none",


include: "workflow/rules/texts.smk"
include: "workflow/rules/dump.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/probing.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_stores(),
        all_metrics(),
        all_probes(),
        all_reports(),
    default_target: True
