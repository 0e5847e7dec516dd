"""One forward pass per (model, text set): every layer, pooled and per token.

Texts are tokenised once, sorted by length (longest first, so that an
out-of-memory error comes early) and run in batches; each batch's L + 1
hidden states are pooled over real tokens and scattered into a
:class:`~layerscope.store.StoreWriter`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from layerscope import __version__
from layerscope.models import LayerReader, load_model, load_tokenizer
from layerscope.store import StoreWriter

log = logging.getLogger(__name__)

LAYER_CONVENTION = "0=embedding output, k=block k, L=last block"


class NonFiniteActivationError(RuntimeError):
    """A hidden state holds NaN or Inf."""


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over real tokens and the last real token, for any padding side.

    Parameters
    ----------
    hidden : (batch, seq, dim)
    attention_mask : (batch, seq), 1 for real tokens

    Returns
    -------
    mean, last : (batch, dim) float32
    """
    hidden = hidden.float()
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    seq_len = attention_mask.shape[1]
    last_index = seq_len - 1 - attention_mask.flip(1).long().argmax(1)
    last = hidden[torch.arange(hidden.shape[0]), last_index]
    return mean, last


def _length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error)


def _check_finite(states: list[torch.Tensor], mask: torch.Tensor, texts: np.ndarray):
    real = mask.bool()
    for layer, hidden in enumerate(states):
        values = hidden[real]
        if not torch.isfinite(values).all():
            raise NonFiniteActivationError(
                f"layer {layer} holds NaN or Inf for one of the texts {texts.tolist()}"
                " (try dtype: float32)"
            )


def run_batches(
    reader,
    encodings: list[list[int]],
    writer: StoreWriter,
    *,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    progress: bool = True,
) -> int:
    """Run every batch through ``reader`` into ``writer``; returns the batch size used.

    A CUDA out-of-memory error halves the batch size and retries the same texts.
    """
    lengths = np.array([len(ids) for ids in encodings])
    pending = _length_sorted_batches(lengths, batch_size)
    bar = tqdm(total=len(encodings), unit="text", disable=not progress, desc="dump")

    while pending:
        batch = pending.pop(0)
        width = int(lengths[batch].max())
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : lengths[i]] = torch.tensor(encodings[i])
            mask[row, : lengths[i]] = 1

        try:
            states = reader(input_ids.to(device), mask.to(device))
        except Exception as error:
            if not _is_oom(error) or len(batch) == 1:
                raise
            batch_size = max(1, len(batch) // 2)
            log.warning("out of memory: batch size halved to %d", batch_size)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            remaining = np.concatenate([batch, *pending])  # still length-sorted
            pending = [
                remaining[i : i + batch_size]
                for i in range(0, len(remaining), batch_size)
            ]
            continue

        mask = mask.to(device)
        _check_finite(states, mask, batch)
        pooled = [pool(hidden, mask) for hidden in states]
        mean = torch.stack([m for m, _ in pooled]).cpu().numpy()
        last = torch.stack([t for _, t in pooled]).cpu().numpy()
        tokens = None
        if writer.store_tokens:
            stacked = (
                torch.stack(states).float().cpu().numpy()
            )  # (layer, batch, seq, dim)
            tokens = [stacked[:, row, : lengths[i]] for row, i in enumerate(batch)]
        writer.write_batch(batch, mean, last, tokens)
        bar.update(len(batch))

    bar.close()
    return batch_size


def dump(
    spec: dict,
    texts: Sequence[str],
    out_path: str | Path,
    *,
    model_name: str,
    source_name: str,
    text_hash: str,
    store_tokens: bool,
    progress: bool = True,
) -> dict:
    """Dump every layer of ``spec``'s model over ``texts`` to a store at ``out_path``.

    Parameters
    ----------
    spec : a validated model entry of the config
    texts : the source's texts, in row order (row i of the store is texts[i])

    Returns
    -------
    A summary: texts, tokens, seconds, bytes written, batch size used.
    """
    started = time.perf_counter()
    device = pick_device(spec.get("device", "auto"))
    tokenizer = load_tokenizer(spec)
    encodings = tokenizer(
        list(texts),
        truncation=True,
        max_length=int(spec["max_length"]),
        add_special_tokens=True,
    )["input_ids"]
    empty = [i for i, ids in enumerate(encodings) if len(ids) == 0]
    if empty:
        raise ValueError(f"text {empty[0]} of {source_name!r} tokenises to nothing")

    model = load_model(spec, device=device)
    reader = LayerReader(model, final_norm=bool(spec.get("final_norm", True)))
    n_tokens = np.array([len(ids) for ids in encodings])
    attrs = {
        "model": model_name,
        "model_source": spec["source"],
        "model_class": type(model).__name__,
        "model_type": model.config.model_type,
        "revision": spec.get("revision"),
        "random_init": bool(spec.get("random_init", False)),
        "seed": int(spec.get("seed", 0)),
        "compute_dtype": spec.get("dtype", "float32"),
        "final_norm": bool(spec.get("final_norm", True)) and reader.has_final_norm,
        "has_final_norm": reader.has_final_norm,
        "max_length": int(spec["max_length"]),
        "source": source_name,
        "text_hash": text_hash,
        "layer_convention": LAYER_CONVENTION,
        "padding_side": "right",
        "layerscope_version": __version__,
    }
    writer = StoreWriter(
        out_path,
        n_layers=reader.n_layers,
        dim=int(model.get_input_embeddings().weight.shape[1]),
        n_tokens=n_tokens,
        store_tokens=store_tokens,
        storage_dtype=spec.get("storage_dtype", "float32"),
        attrs=attrs,
    )

    try:
        batch_size = run_batches(
            reader,
            encodings,
            writer,
            pad_id=int(tokenizer.pad_token_id),
            batch_size=int(spec["batch_size"]),
            device=device,
            progress=progress,
        )
        writer.attrs["batch_size_used"] = batch_size
        path = writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()

    seconds = time.perf_counter() - started
    n_bytes = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    summary = {
        "model": model_name,
        "source": source_name,
        "texts": len(texts),
        "tokens": int(n_tokens.sum()),
        "layers": reader.n_layers,
        "seconds": round(seconds, 2),
        "bytes": n_bytes,
        "batch_size": batch_size,
        "path": str(path),
    }
    log.info(
        "dumped %s/%s: %d texts, %d tokens, %d layers in %.1f s, %.1f MB at %s",
        model_name,
        source_name,
        summary["texts"],
        summary["tokens"],
        summary["layers"],
        seconds,
        n_bytes / 1e6,
        path,
    )
    return summary
