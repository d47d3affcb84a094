"""``tokenizer.json`` read without transformers (issue 14, start-up): the same ids as
``AutoTokenizer``, and an ONNX load that imports neither torch nor transformers.

Real tokenizers of the shipped checkpoint, the 3-class tweets checkpoint and the sentence embedder;
real validation snippets (never test texts) and odd inputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, process_env
from selfheal.model.tokenizer import FileTokenizer, load_tokenizer

ODD = [
    "",
    "   ",
    "🤮 👎👎👎",
    "这部电影太糟糕了",
    "Ça c'est très bien, n'est-ce pas?",
    "Hello [CLS] world [SEP] <s> </s> <mask> [UNK]",
    "don't  stop\tme\nnow",
    "\u200b\u00ad zero-width and soft hyphen",
    "word " * 300,
]


def _directories() -> list[Path]:
    from selfheal.model import embedder
    from selfheal.model.checkpoint import resolve_checkpoint

    dirs = [resolve_checkpoint(None), REPO / "models" / "tweets-3class", embedder.bundled_embedder_path()]
    return [d for d in dirs if (d / "tokenizer.json").exists()]


@pytest.fixture(scope="module", params=_directories(), ids=lambda p: p.name)
def pair(request):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(request.param)), FileTokenizer(request.param)


@pytest.fixture(scope="module")
def texts(rt_splits) -> list[str]:
    return list(rt_splits["validation"]["text"][:300]) + ODD


def test_same_ids_as_autotokenizer(pair, texts):
    auto, own = pair
    assert own(texts)["input_ids"] == auto(texts, truncation=False)["input_ids"]


def test_same_truncation_and_single_text_calls(pair, texts):
    auto, own = pair
    cut = own(texts, truncation=True, max_length=16)["input_ids"]
    assert cut == auto(texts, truncation=True, max_length=16)["input_ids"]
    assert max(len(ids) for ids in cut) == 16
    for text in texts[:20] + ODD:
        kwargs = {"add_special_tokens": False, "truncation": True, "max_length": 512}
        assert own(text, **kwargs)["input_ids"] == auto(text, **kwargs)["input_ids"]
    # the truncating copy did not change the shared tokenizer
    assert own(texts)["input_ids"] == auto(texts, truncation=False)["input_ids"]


def test_same_special_tokens(pair):
    auto, own = pair
    assert own.pad_token_id == auto.pad_token_id
    assert own.unk_token_id == auto.unk_token_id
    assert own.all_special_ids == sorted(auto.all_special_ids)
    assert own.num_special_tokens_to_add(pair=False) == auto.num_special_tokens_to_add(pair=False)


def test_a_directory_without_tokenizer_json_falls_back_to_transformers(tmp_path):
    from selfheal.model.checkpoint import resolve_checkpoint

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}', encoding="utf-8")
    tok = load_tokenizer(tmp_path)
    assert not isinstance(tok, FileTokenizer)
    assert tok("good film")["input_ids"] == [2, 5, 6, 3]
    assert isinstance(load_tokenizer(resolve_checkpoint(None)), FileTokenizer)


def test_an_onnx_load_imports_neither_torch_nor_transformers(tmp_path):
    """With the exports in the cache (made here first, in their own process, for the default
    config), loading the classifier that config describes and predicting imports no torch and no
    transformers."""
    env = process_env()
    export = [sys.executable, "-m", "selfheal", "export-onnx", "--runtime", "onnx-int8"]
    subprocess.run(export, check=True, capture_output=True, env=env, cwd=tmp_path, timeout=600)
    probe = (
        "import sys\n"
        "from selfheal.config import load_config\n"
        "from selfheal.model.classifier import Classifier\n"
        "c = Classifier.from_config(load_config())\n"
        "p = c.predict(['A wonderful, moving film.', 'Dull and far too long.'])\n"
        "print([x.label for x in p], 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    ).stdout.split()
    assert out[-2:] == ["False", "False"], out
    assert out[0].startswith("['Positive'")
