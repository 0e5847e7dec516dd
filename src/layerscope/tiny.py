"""Tiny random-weight models built from a config, for tests and dry runs.

Each is a real transformers architecture (GPT-2, GPT-NeoX as in Pythia, Llama,
BERT, Mamba) with 4 blocks of width 64 and a tokenizer trained here on a few
hundred sentences, saved with ``save_pretrained`` so that the workflow loads
it like any local model. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

ARCHITECTURES = ("gpt2", "gpt_neox", "llama", "bert", "mamba")

_TRAINING_TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a layer by layer look at hidden representations",
    "language models build their features one block at a time",
    "entropy, curvature and rank describe how a layer spreads its tokens",
    "in the beginning was the word, and the word was a vector",
    "numbers like 3 14 and 2026 appear in text too",
    "Punctuation: commas, full stops; and question marks?",
    "UPPER case and lower case letters both matter",
]


def _train_tokenizer(arch: str, vocab_size: int):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    corpus = [f"{line} {i}" for i in range(40) for line in _TRAINING_TEXT]
    if arch == "bert":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=special
        )
        tokenizer.train_from_iterator(corpus, trainer)
        cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        tokenizer.decoder = decoders.WordPiece()
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def _config(arch: str, vocab_size: int, hidden: int, n_blocks: int):
    from transformers import (
        BertConfig,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MambaConfig,
    )

    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_embd=hidden, n_layer=n_blocks, n_head=4
        )
    if arch == "gpt_neox":
        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=n_blocks,
            num_attention_heads=4,
            intermediate_size=4 * hidden,
        )
    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=n_blocks,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=2 * hidden,
        )
    if arch == "bert":
        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=n_blocks,
            num_attention_heads=4,
            intermediate_size=4 * hidden,
        )
    if arch == "mamba":
        return MambaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=n_blocks,
            state_size=8,
        )
    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


def build_tiny_model(
    arch: str,
    out_dir: str | Path,
    *,
    hidden: int = 64,
    n_blocks: int = 4,
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Build and save a tiny random model of ``arch`` with its own tokenizer."""
    from transformers import AutoModel

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    tokenizer = _train_tokenizer(arch, vocab_size)
    config = _config(arch, len(tokenizer), hidden, n_blocks)
    if arch != "bert":
        config.pad_token_id = tokenizer.pad_token_id
        config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id

    torch.manual_seed(seed)
    model = AutoModel.from_config(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
