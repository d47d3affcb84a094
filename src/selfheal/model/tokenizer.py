"""A tokenizer straight from ``tokenizer.json``, without importing transformers.

Inference needs only the fast (Rust) tokenizer that ``tokenizer.json`` describes in full
(normalizer, pre-tokenizer, model, post-processor): :class:`FileTokenizer` runs it through the
``tokenizers`` library and offers the part of transformers' tokenizer interface selfheal uses
(``tokenizer(texts)["input_ids"]``, the special-token ids). Importing transformers (and with it
torch) costs more than a second at start-up; with ONNX Runtime exports in the cache, loading a
checkpoint then imports neither. The ids are those of ``AutoTokenizer`` on the same directory
(``tests/test_tokenizer.py`` compares them on validation texts and on odd inputs).

:func:`load_tokenizer` falls back to ``AutoTokenizer`` for a directory without ``tokenizer.json``
(a slow, vocab-file-only tokenizer).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _token_name(value: Any) -> str | None:
    """A special token from a tokenizer config: a string, or ``{"content": ...}`` (AddedToken)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


class FileTokenizer:
    """The fast tokenizer of a ``tokenizer.json``, called like a transformers tokenizer.

    Padding and truncation stored in the file are switched off: callers pad their own batches
    (:func:`selfheal.model.runtime.pad`) and ask for truncation per call.
    """

    def __init__(self, directory: Path | str) -> None:
        from tokenizers import Tokenizer

        directory = Path(directory)
        self._tok = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._truncating: dict[int, Any] = {}
        self._lock = threading.Lock()
        specials: dict[str, str] = {}
        for name in (SPECIAL_MAP_FILE, CONFIG_FILE):  # the config wins where both name a token
            path = directory / name
            if path.exists():
                data = json.loads(path.read_text(encoding="utf-8"))
                for key in _SPECIAL_KEYS:
                    token = _token_name(data.get(key))
                    if token is not None:
                        specials[key] = token
        self._specials = {key: self._tok.token_to_id(token) for key, token in specials.items()}
        self.pad_token_id: int | None = self._specials.get("pad_token")
        self.unk_token_id: int | None = self._specials.get("unk_token")
        self.all_special_ids: list[int] = sorted({i for i in self._specials.values() if i is not None})

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens the post-processor adds to one text (or a pair)."""
        processor = self._tok.post_processor
        return 0 if processor is None else int(processor.num_special_tokens_to_add(pair))

    def _with_truncation(self, max_length: int) -> Any:
        """A copy of the tokenizer that truncates to ``max_length`` (made once per length; the
        shared one is never switched, so concurrent calls cannot see each other's setting)."""
        with self._lock:
            tok = self._truncating.get(max_length)
            if tok is None:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_str(self._tok.to_str())
                tok.enable_truncation(max_length)
                self._truncating[max_length] = tok
            return tok

    def __call__(
        self,
        text: str | list[str],
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
    ) -> dict[str, Any]:
        """``{"input_ids": ...}``: a list of ids for one text, a list of lists for a list."""
        tok = self._with_truncation(max_length) if truncation and max_length else self._tok
        if isinstance(text, str):
            return {"input_ids": tok.encode(text, add_special_tokens=add_special_tokens).ids}
        encodings = tok.encode_batch(list(text), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encodings]}


def load_tokenizer(directory: Path | str) -> Any:
    """:class:`FileTokenizer` for a directory with ``tokenizer.json``, else transformers'
    ``AutoTokenizer`` (which imports transformers)."""
    directory = Path(directory)
    if (directory / TOKENIZER_FILE).is_file():
        return FileTokenizer(directory)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))
