"""Tiny random models built locally: for tests and for the product's demo (no downloads).

Each builder writes a directory that loads through the same path a user's model takes:
`AutoTokenizer.from_pretrained(path)` and `AutoModel...from_pretrained(path)`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

SEED = 1234
VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]

# A small chat template: "<|user|>\n{content}<eos>\n<|assistant|>\n{content}<eos>\n".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# A few hundred English-like words so that BPE merges give a usable vocabulary.
_WORDS = str.split(
    "the a an and or but if then so because of to in on at by for with from about as is are was "
    "were be been good bad great poor helpful harmful answer question please thanks yes no maybe "
    "cat dog bird fish tree river mountain city house car road book story poem song code python "
    "data model train learn reward policy value human feedback rank rate prefer better worse best "
    "worst one two three four five six seven eight nine ten hello world what why how when where "
    "who write explain summarize list give tell make short long clear kind polite rude true false"
)


def _corpus(n: int = 2000) -> list[str]:
    """Deterministic pseudo-sentences to train the tokenizer on."""
    g = torch.Generator().manual_seed(SEED)
    idx = torch.randint(len(_WORDS), (n, 12), generator=g).tolist()
    return [" ".join(_WORDS[i] for i in row) + "." for row in idx]


def build_tokenizer(
    path: str | os.PathLike[str],
    *,
    bert_style: bool = False,
    corpus: list[str] | None = None,
    vocab_size: int = VOCAB_SIZE,
) -> Path:
    """Train a byte-level BPE tokenizer locally (on `corpus`, or on pseudo-sentences) and save it
    as a HF fast tokenizer."""
    path = Path(path)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [*SPECIAL_TOKENS, "[CLS]", "[SEP]"] if bert_style else SPECIAL_TOKENS
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or _corpus(), trainer=trainer)
    if bert_style:
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        extra = {"cls_token": "[CLS]", "sep_token": "[SEP]"}
    else:
        bos = tok.token_to_id("<bos>")
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
        )
        extra = {"bos_token": "<bos>"}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
        **extra,
    )
    fast.save_pretrained(path)
    return path


def build_tiny_causal_lm(
    path: str | os.PathLike[str], *, hidden_size: int = 64, corpus: list[str] | None = None
) -> Path:
    """Build a 2-layer random Llama-style causal LM plus tokenizer under `path`; with a `corpus`
    the tokenizer learns that text's words."""
    path = Path(path)
    build_tokenizer(path, corpus=corpus)
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def build_tiny_encoder(
    path: str | os.PathLike[str],
    *,
    hidden_size: int = 64,
    corpus: list[str] | None = None,
    vocab_size: int = VOCAB_SIZE,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int = 0,
) -> Path:
    """Build a random BERT-style encoder (reward-model backbone, one-label head) plus tokenizer:
    2 layers of `hidden_size` by default, or any shape (MiniLM: 384, 6 layers, 12 heads, 1536);
    with a `corpus` the tokenizer learns that text's words (e.g. real conversations)."""
    path = Path(path)
    build_tokenizer(path, bert_style=True, corpus=corpus, vocab_size=vocab_size)
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    torch.manual_seed(SEED)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def build_all(out: str | os.PathLike[str]) -> dict[str, Path]:
    """Build both tiny models under `out`/causal-lm and `out`/encoder."""
    out = Path(out)
    return {
        "causal-lm": build_tiny_causal_lm(out / "causal-lm"),
        "encoder": build_tiny_encoder(out / "encoder"),
    }
