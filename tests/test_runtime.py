"""The model runtimes (issue 14): the merged LoRA model, token-length-sorted batches, the ONNX
Runtime backends and their export cache, threads, ``selfheal export-onnx``.

Real tokenizers, the real shipped checkpoint, real ONNX Runtime. The ONNX exports are made once per
session into a temporary ``SELFHEAL_CACHE`` (the extracted all-mpnet-base-v2 weights are linked in
from the real cache, not extracted again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from selfheal.model.checkpoint import ModelError

N_TEXTS = 50


@pytest.fixture(scope="session")
def val_texts(rt_splits) -> list[str]:
    """Real validation snippets (never test texts)."""
    return list(rt_splits["validation"]["text"][:N_TEXTS])


def _new_cache(root: Path) -> Path:
    """An empty selfheal cache sharing the extracted embedder weights of the real one."""
    from selfheal.model import embedder

    weights = embedder.bundled_embedder_path()  # extracted in the real cache if not yet
    root.mkdir(parents=True, exist_ok=True)
    (root / weights.name).symlink_to(weights, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    """A selfheal cache for this session's ONNX exports."""
    return _new_cache(tmp_path_factory.mktemp("selfheal-cache"))


def _load(cache: Path, **kwargs):
    from selfheal.model.classifier import Classifier

    os.environ["SELFHEAL_CACHE"] = str(cache)  # put back after the test (conftest)
    return Classifier.load(None, **kwargs)


@pytest.fixture(scope="session")
def onnx_classifier(onnx_cache):
    """The shipped checkpoint on ONNX Runtime fp32, both encoders (exported once per session)."""
    saved = os.environ.get("SELFHEAL_CACHE")
    try:
        return _load(onnx_cache, runtime="onnx")
    finally:
        os.environ.pop("SELFHEAL_CACHE") if saved is None else os.environ.update(SELFHEAL_CACHE=saved)


@pytest.fixture(scope="session")
def int8_classifier(onnx_cache, onnx_classifier):
    """The shipped checkpoint with the int8 MiniLM (and the fp32 embedder export of the session:
    ``embedder_int8`` is off in ``Classifier.load`` unless asked for)."""
    saved = os.environ.get("SELFHEAL_CACHE")
    try:
        return _load(onnx_cache, runtime="onnx-int8")
    finally:
        os.environ.pop("SELFHEAL_CACHE") if saved is None else os.environ.update(SELFHEAL_CACHE=saved)


@pytest.fixture(scope="session")
def int8_embedder_classifier(onnx_cache, onnx_classifier):
    """``embedder.int8``: the embedder's int8 export too (smoothed; the attention products fp32)."""
    saved = os.environ.get("SELFHEAL_CACHE")
    try:
        return _load(onnx_cache, runtime="onnx-int8", embedder_int8=True, use_knowability=False)
    finally:
        os.environ.pop("SELFHEAL_CACHE") if saved is None else os.environ.update(SELFHEAL_CACHE=saved)


# --- torch: the merged adapter, length-sorted batches, one tokenization ---------------------------


def test_merged_adapter_gives_the_unmerged_logits(shipped_classifier, val_texts):
    from peft import PeftModel

    from selfheal.model.classifier import Classifier

    unmerged = Classifier.load(None, use_embedder=False, use_knowability=False, merge=False)
    assert isinstance(unmerged.model, PeftModel)
    assert not isinstance(shipped_classifier.model, PeftModel)  # merged at load: a plain model
    assert not any("lora" in name for name, _ in shipped_classifier.model.named_parameters())
    merged = shipped_classifier.encoder_logits(val_texts)
    np.testing.assert_allclose(merged, unmerged.encoder_logits(val_texts), atol=1e-4, rtol=0)


def test_bf16_encoder_casts_its_weights_once_and_gives_the_autocast_numbers(shipped_classifier, val_texts):
    """The embedder's ``precision: bf16`` path: ``Linear`` weights are cast to bfloat16 once at
    load instead of by autocast on every call, with the same numbers to the bit."""
    import copy

    import torch

    from selfheal.model.runtime import TorchEncoder, pad

    model = shipped_classifier.model
    tokenizer = shipped_classifier.tokenizer
    ids, mask = pad(tokenizer(val_texts[:8])["input_ids"], tokenizer.pad_token_id or 0)
    reference = copy.deepcopy(model)  # fp32 weights, cast by autocast on each call (the old path)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = reference(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
    encoder = TorchEncoder(copy.deepcopy(model), output=lambda out: out.logits, bf16=True)
    linears = [m for m in encoder.module.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    norms = [m for m in encoder.module.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # the rest stays fp32
    np.testing.assert_array_equal(encoder(ids, mask), expected.float().numpy())


def test_sorted_batches_keep_the_input_order(shipped_classifier, val_texts):
    texts = val_texts[:12]
    alone = np.concatenate([shipped_classifier.encoder_logits([text]) for text in texts])
    batched = shipped_classifier.encoder_logits(texts, batch_size=5)  # lengths differ in each batch
    np.testing.assert_allclose(batched, alone, atol=1e-4, rtol=0)
    assert shipped_classifier.encoder_logits([]).shape == (0, len(shipped_classifier.labels))
    # the embedder's batches: tests/test_embedder.py (encode(texts[::-1])[::-1])


def test_sorted_batches_bound_their_padding(shipped_classifier, rt_splits):
    from selfheal.model.runtime import MAX_PADDING, Tokenized, length_batches

    texts = list(rt_splits["validation"]["text"][:64])  # one small chunk of mixed lengths
    lengths = Tokenized(shipped_classifier.tokenizer, texts, shipped_classifier.max_length).lengths
    batches = list(length_batches(lengths, 32))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(texts)))  # each text once
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        assert len(batch) <= 32
        assert len(batch) == 1 or len(batch) * max(sizes) <= (1 + MAX_PADDING) * sum(sizes)

    def padded(groups) -> int:
        return sum(len(group) * max(lengths[i] for i in group) for group in groups)

    assert padded(batches) < padded(np.array_split(np.argsort(lengths), 2))  # 2 sorted batches of 32
    unsorted = list(length_batches(lengths, 32, sort=False))  # the baseline: input order, fixed size
    assert [len(b) for b in unsorted] == [32, 32] and unsorted[0].tolist() == list(range(32))


@pytest.mark.parametrize("which", ["classifier", "embedder"])
def test_tokenized_once_cuts_like_the_tokenizer(shipped_classifier, val_texts, which):
    from selfheal.model.runtime import Tokenized

    tokenizer = (
        shipped_classifier.tokenizer
        if which == "classifier"
        else shipped_classifier._embedder.encoder.tokenizer
    )
    long_text = " ".join(val_texts)  # far longer than 128 tokens
    texts = [long_text, val_texts[0], long_text[:700]]
    tokens = Tokenized(tokenizer, texts, 128)
    assert tokens.ids == tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    assert tokens.lengths == [len(ids) for ids in tokenizer(texts)["input_ids"]]
    assert tokens.lengths[0] > 128 and len(tokens.ids[0]) == 128


def test_predict_flags_truncated_texts_from_one_tokenization(shipped_classifier, val_texts):
    long_text = " ".join(val_texts)
    predictions = shipped_classifier.predict([val_texts[0], long_text])
    assert [p.truncated for p in predictions] == [False, True]
    assert shipped_classifier.is_truncated(long_text) and not shipped_classifier.is_truncated(val_texts[0])


# --- ONNX Runtime -------------------------------------------------------------------------------


def test_onnx_fp32_gives_the_torch_answers(onnx_classifier, shipped_classifier, val_texts):
    assert set(onnx_classifier.exports) == {"classifier", "embedder"}
    assert onnx_classifier.model is None and onnx_classifier._embedder.encoder.model is None  # no torch
    torch_logits = shipped_classifier.encoder_logits(val_texts)
    onnx_logits = onnx_classifier.encoder_logits(val_texts)
    np.testing.assert_array_equal(onnx_logits.argmax(1), torch_logits.argmax(1))
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3, rtol=0)
    # the whole ensemble; the torch embedder runs in bfloat16 where the CPU has it, ONNX in fp32
    torch_probs = shipped_classifier.predict_proba(val_texts)
    onnx_probs = onnx_classifier.predict_proba(val_texts)
    np.testing.assert_array_equal(onnx_probs.argmax(1), torch_probs.argmax(1))
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=0.02, rtol=0)
    assert onnx_classifier.temperature == shipped_classifier.temperature


def test_onnx_int8_agreement(int8_classifier, shipped_classifier, val_texts):
    assert int8_classifier.exports["classifier"].stat().st_size < 40e6  # int8 weights (fp32: 90 MB)
    torch_logits = shipped_classifier.encoder_logits(val_texts)
    int8_logits = int8_classifier.encoder_logits(val_texts)
    raw = float((int8_logits.argmax(1) == torch_logits.argmax(1)).mean())
    ensemble = float(
        (
            int8_classifier.predict_proba(val_texts).argmax(1)
            == shipped_classifier.predict_proba(val_texts).argmax(1)
        ).mean()
    )
    print(
        f"int8 argmax agreement with torch on {len(val_texts)} validation texts: MiniLM {raw:.1%}, ensemble {ensemble:.1%}"
    )
    assert raw >= 0.94 and ensemble >= 0.96


def test_int8_answers_do_not_depend_on_the_batch(int8_classifier, int8_embedder_classifier, val_texts):
    """Dynamic int8 quantization scales each activation tensor over the whole batch, so on
    onnx-int8 a text runs alone: the same answer in a file, a request or the evaluation."""
    from selfheal.model.runtime import Tokenized, length_batches, pad, per_call

    texts = val_texts[:20]
    alone = np.concatenate([int8_classifier.encoder_logits([text]) for text in texts])
    np.testing.assert_allclose(int8_classifier.encoder_logits(texts, batch_size=8), alone, atol=1e-6, rtol=0)
    encoder = int8_embedder_classifier._embedder.encoder
    features = encoder.encode(texts[:6])
    np.testing.assert_allclose(encoder.encode(texts[:6][::-1])[::-1], features, atol=1e-6, rtol=0)
    assert per_call("onnx-int8", 128) == 1 and per_call("onnx", 128) == 128 == per_call("torch", 128)
    # what per_call avoids: the same texts in batches of 8 give other logits
    tokens = Tokenized(int8_classifier.tokenizer, texts, int8_classifier.max_length)
    batched = np.zeros_like(alone)
    for idx in length_batches(tokens.lengths, 8):
        pad_id = int8_classifier.tokenizer.pad_token_id or 0
        batched[idx] = int8_classifier._encoder(*pad([tokens.ids[i] for i in idx], pad_id))
    assert np.abs(batched - alone).max() > 1e-3


def test_int8_texts_run_two_at_once_with_the_answers_they_get_one_by_one(int8_embedder_classifier, val_texts):
    """On onnx-int8 a batch's one-text calls run ``model.threads`` at once (both encoders, and
    the voter's states): every number is the one the same calls give one after the other."""
    from selfheal.model.runtime import calls_at_once

    model, texts = int8_embedder_classifier, val_texts[:24]
    encoder = model._embedder.encoder
    assert calls_at_once("onnx-int8", 2) == 2 and calls_at_once("onnx-int8", 1) == 1
    assert calls_at_once("onnx", 2) == 1 == calls_at_once("torch", 4)
    saved = model.threads, encoder.threads
    try:
        model.threads = encoder.threads = 2
        logits, features = model.logits_and_features(texts)
        model.threads = encoder.threads = 1
        one_by_one, features_one = model.logits_and_features(texts)
    finally:
        model.threads, encoder.threads = saved
    np.testing.assert_array_equal(logits, one_by_one)
    np.testing.assert_array_equal(features, features_one)


def test_in_order_keeps_the_order_and_raises_a_call_s_error():
    """``in_order`` yields in the items' order whichever call ends first, and a call's error
    reaches the caller at that item (the ones before it were yielded)."""
    import time

    from selfheal.model.runtime import in_order

    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0)
        if i == 7:
            raise ValueError("seven")
        return i * i

    got = []
    with pytest.raises(ValueError, match="seven"):
        for value in in_order(slow_first, range(10), workers=2):
            got.append(value)
    assert got == [i * i for i in range(7)]
    assert list(in_order(slow_first, range(5), workers=3)) == list(in_order(slow_first, range(5)))


def test_int8_embedder_is_smoothed_and_keeps_only_the_attention_products_in_fp32(
    int8_classifier, int8_embedder_classifier, onnx_classifier, val_texts
):
    """``embedder.int8``: every weight MatMul int8, each after its SmoothQuant ``Mul``; the
    attention products stay fp32; the features stay close to the fp32 export's."""
    import onnx

    from selfheal.model.embedder import EMBEDDER_FP32_RULES
    from selfheal.model.runtime import fp32_matmuls

    assert int8_classifier.exports["embedder"] == onnx_classifier.exports["embedder"]  # fixture: fp32
    fp32_file, int8_file = onnx_classifier.exports["embedder"], int8_embedder_classifier.exports["embedder"]
    assert int8_file.stat().st_size < 0.4 * fp32_file.stat().st_size
    kept = fp32_matmuls(fp32_file, EMBEDDER_FP32_RULES)
    assert len(kept) == 12 * 2  # per layer: query x key, probabilities x value
    graph = onnx.load(str(int8_file), load_external_data=False).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("MatMul") == len(kept) and ops.count("MatMulInteger") == 12 * 6  # q, k, v, o, up, down
    producers = {out: node.op_type for node in graph.node for out in node.output}
    quantized_inputs = [
        producers.get(node.input[0]) for node in graph.node if node.op_type == "DynamicQuantizeLinear"
    ]
    assert quantized_inputs and all(op == "Mul" for op in quantized_inputs)  # each smoothed first
    fp32 = onnx_classifier._embedder.encoder.encode(val_texts)
    int8 = int8_embedder_classifier._embedder.encoder.encode(val_texts)
    cosine = np.sum(fp32 * int8, axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    print(
        f"int8 embedder features vs fp32 on {len(val_texts)} validation texts: cosine mean {cosine.mean():.4f}"
    )
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.97


def test_onnx_sessions_do_not_spin_between_requests(int8_classifier):
    """Idle ONNX Runtime threads sleep: the next session of the same request gets the cores."""
    sessions = [int8_classifier._encoder.session, int8_classifier._embedder.encoder._encoder.session]
    for session in sessions:
        entries = session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        assert entries == "0"


def test_an_unknown_fp32_rule_is_an_error(onnx_classifier):
    from selfheal.model.runtime import fp32_matmuls

    with pytest.raises(ValueError, match="unknown fp32 rule"):
        fp32_matmuls(onnx_classifier.exports["embedder"], ["layer-norms"])


def test_onnx_predictions_have_the_graph_fields(onnx_classifier, val_texts):
    predictions = onnx_classifier.predict(val_texts[:3])
    assert [p.label for p in predictions] and all(p.knowability is not None for p in predictions)
    assert all(abs(sum(p.probs.values()) - 1) < 1e-6 for p in predictions)


def _small(cache: Path):
    """The MiniLM alone on ONNX fp32 (a quick export) with ``cache`` as SELFHEAL_CACHE."""
    return _load(cache, runtime="onnx", use_embedder=False, use_knowability=False)


def test_export_cache_reexports_a_damaged_or_changed_file(tmp_path, val_texts):
    from selfheal.model import runtime

    cache = _new_cache(tmp_path / "cache")
    first = _small(cache)
    path = first.exports["classifier"]
    expected = first.encoder_logits(val_texts[:5])
    stamp = json.loads((path.parent / runtime.STAMP_FILE).read_text())
    assert stamp["sha256"] and stamp["key"]["sources"]  # keyed by the weights' digests
    assert not list(path.parent.parent.glob(".*-*"))  # no staging directory left behind

    size = path.stat().st_size
    with path.open("r+b") as fh:  # truncated (an interrupted copy, a full disk)
        fh.truncate(size // 2)
    again = _small(cache)
    assert again.exports["classifier"] == path and path.stat().st_size == size
    np.testing.assert_allclose(again.encoder_logits(val_texts[:5]), expected, atol=1e-5, rtol=0)

    with path.open("r+b") as fh:  # same size, other bytes, mtime kept: the stamp trusts one stat...
        st = path.stat()
        fh.seek(size // 2)
        fh.write(b"\0" * 64)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # ...a changed mtime: hashed, re-exported
    third = _small(cache)
    np.testing.assert_allclose(third.encoder_logits(val_texts[:5]), expected, atol=1e-5, rtol=0)
    assert runtime.verified_export(path.parent, stamp["key"])

    other = dict(stamp["key"], sources={**stamp["key"]["sources"], "adapter_model.safetensors": "0" * 64})
    assert not runtime.verified_export(path.parent, other)  # other weights: another export
    assert runtime.export_dir(other) != path.parent


def test_export_cache_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(ModelError) as err:
        _small(blocker)
    assert "cannot export the classifier to ONNX" in str(err.value) and "\n" not in str(err.value)


def test_a_file_onnx_runtime_cannot_read_is_a_model_error(tmp_path):
    from selfheal.model.runtime import OnnxEncoder

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match="cannot load the ONNX export"):
        OnnxEncoder(bad, 1)


def test_an_unknown_runtime_is_a_model_error():
    from selfheal.model.classifier import Classifier

    with pytest.raises(ModelError, match=r"model\.runtime 'tensorrt'"):
        Classifier.load(None, runtime="tensorrt")


# --- threads ------------------------------------------------------------------------------------


def test_threads_explicit_then_omp_then_cores(monkeypatch):
    from selfheal.model import runtime

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.resolve_threads(None) == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert runtime.resolve_threads(None) == 1
    assert runtime.resolve_threads(3) == 3  # model.threads wins over the environment
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert runtime.resolve_threads(None) == runtime.available_cores()


def test_threads_reach_torch_and_onnx_runtime(onnx_cache):
    import torch

    before = torch.get_num_threads()
    try:
        clf = _load(onnx_cache, runtime="onnx", use_embedder=False, use_knowability=False, threads=1)
        assert clf.threads == 1 and torch.get_num_threads() == 1
        assert clf._encoder.session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(before)


def test_config_runtime_and_threads():
    from selfheal.config import ConfigError, load_config

    config = load_config(None, ["model.runtime=onnx-int8", "model.threads=2"])
    assert (config.model.runtime, config.model.threads) == ("onnx-int8", 2)
    with pytest.raises(ConfigError, match=r"model\.runtime"):
        load_config(None, ["model.runtime=tensorrt"])
    with pytest.raises(ConfigError, match=r"model\.threads"):
        load_config(None, ["model.threads=0"])


# --- selfheal export-onnx -----------------------------------------------------------------------


def test_export_onnx_command(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_CACHE", str(_new_cache(tmp_path / "cache")))
    # no mpnet here (the embedder off, the voter not a backup): the next test lists the voter
    no_mpnet = ("--set", "embedder.enabled=false", "--set", "backup.models=[tfidf,vader,embedding]")
    result = cli(
        "export-onnx", "--runtime", "onnx-int8", *no_mpnet, "--set", "backup.voters=null", check=True
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("onnx-int8: classifier ")
    assert lines[1].startswith("onnx-int8: backup embedding ")  # backup.models has "embedding"
    path = Path(lines[0].split()[2])
    assert path.is_file() and str(path).startswith(str(tmp_path / "cache" / "onnx"))
    mtime = path.stat().st_mtime_ns
    cli("export-onnx", "--runtime", "onnx-int8", *no_mpnet, "--set", "backup.voters=null", check=True)
    assert path.stat().st_mtime_ns == mtime  # verified, not made again
    cli(
        "export-onnx",
        "--runtime",
        "onnx-int8",
        "--force",
        *no_mpnet,
        "--set",
        "backup.voters=null",
        check=True,
    )
    assert path.is_file() and path.stat().st_mtime_ns != mtime


def test_export_onnx_lists_the_voter(cli, backup_ensemble):
    """With config.yaml's backups the no-person voter's fp32 export is listed too (already in the
    session's cache: the backups loaded it, so nothing is exported again here)."""
    lines = cli("export-onnx", "--runtime", "onnx-int8", check=True).stdout.strip().splitlines()
    voter = [line for line in lines if line.startswith("onnx-int8: backup mpnet_top ")]
    assert len(voter) == 1 and Path(voter[0].split()[3]).is_file()


def test_export_onnx_bad_runtime_is_one_line(cli):
    result = cli("export-onnx", "--runtime", "tensorrt")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --runtime 'tensorrt' is not one of onnx, onnx-int8"]
