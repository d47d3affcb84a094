"""Does a text's answer depend on the texts batched with it? The int8 MiniLM against fp32.

ONNX Runtime's dynamic int8 quantization finds one scale per activation tensor at run time, over
the whole batch, so on ``onnx-int8`` a text's logits can move with its neighbours. This runs the
shipped model's MiniLM over validation texts in sorted batches of 128 and one text a call, and
prints how far the logits move and how many labels change, for ``onnx-int8`` and ``onnx``.
(selfheal itself runs ``onnx-int8`` one text a call: ``selfheal.model.runtime.per_call``.)

    python scripts/int8_batch_drift.py [--texts 1275]
"""

from __future__ import annotations

import argparse

import numpy as np

from selfheal.data import prepare_splits
from selfheal.model.classifier import Classifier
from selfheal.model.runtime import Tokenized, length_batches, pad


def logits(model: Classifier, texts: list[str], batch_size: int) -> np.ndarray:
    """The MiniLM's logits in sorted batches of ``batch_size`` (bypassing ``per_call``)."""
    tokens = Tokenized(model.tokenizer, texts, model.max_length)
    out = np.zeros((len(texts), len(model.labels)), dtype=np.float32)
    for idx in length_batches(tokens.lengths, batch_size):
        out[idx] = model._encoder(*pad([tokens.ids[i] for i in idx], model.tokenizer.pad_token_id or 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=1275, help="validation texts to use")
    args = parser.parse_args()
    texts = list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["validation"]["text"][: args.texts])
    for runtime in ("onnx-int8", "onnx"):
        model = Classifier.load(None, runtime=runtime, use_embedder=False, use_knowability=False)
        batched, alone = logits(model, texts, 128), logits(model, texts, 1)
        moved = np.abs(batched - alone).max(axis=1)
        flips = int((batched.argmax(axis=1) != alone.argmax(axis=1)).sum())
        print(
            f"{runtime}: {len(texts)} validation texts, batches of 128 against one text a call: "
            f"logits move by up to {moved.max():.4f} (median {np.median(moved):.4f}); "
            f"the MiniLM's label changes on {flips}"
        )


if __name__ == "__main__":
    main()
