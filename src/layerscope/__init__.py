"""layerscope: which layer of a language model holds the best representation.

The library behind the Snakemake workflow: ``open_store`` reads what the dump
stage wrote, one layer at a time.
"""

__version__ = "0.1.0"

from layerscope.store import ActivationStore, open_store  # noqa: E402

__all__ = ["ActivationStore", "open_store", "__version__"]
