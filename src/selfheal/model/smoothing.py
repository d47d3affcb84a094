"""SmoothQuant for the embedder's int8 export: move activation outliers into the weights.

Dynamic int8 quantization gives each activation tensor one scale. In mpnet a few input channels
of some linear layers (after GELU, and out of the layer norms) are far larger than the rest, so
one scale leaves the other channels a handful of levels: quantizing every MatMul brought the
features' cosine to the fp32 ones down to 0.92 (``scripts/embedder_int8_trials.py``).

SmoothQuant (Xiao et al., 2023) divides each input channel ``j`` of a linear layer by
``s_j = max|x_j| ** alpha / max|W_:,j| ** (1 - alpha)`` and multiplies the weight's column ``j`` by
the same ``s_j``: the product is unchanged in exact arithmetic, the activations become flat and
the weights take the outliers, where a per-channel weight scale holds them. ``max|x_j|`` is
measured on calibration texts (:func:`calibration_texts`: the movie train split, never a
validation or test text). The division is one element-wise ``Mul`` before the MatMul in the
export, which costs little beside the int8 MatMul it makes accurate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ALPHA = 0.75  # 0.5 / 0.75 / 0.85 / 0.95: features' cosine to fp32 0.882 / 0.996 / 0.995 / 0.994
CALIBRATION_TEXTS = 256
CALIBRATION_SOURCE = "rotten_tomatoes train split (seed 42), first 256"
MAXIMA_PRECISION = "float64"  # see activation_maxima; part of the export's key


def calibration_texts(n: int = CALIBRATION_TEXTS) -> list[str]:
    """The first ``n`` texts of the movie train split (seed 42): what the activation maxima are
    measured on. Only train texts, so nothing evaluated leaks into the export."""
    from selfheal.data import prepare_splits

    return list(prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)["train"]["text"][:n])


def activation_maxima(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 128
) -> dict[str, Any]:
    """``{linear layer name: max |input| per input channel}`` over ``texts`` (one at a time, so
    no padding token counts), for every ``torch.nn.Linear`` of ``model.encoder``.

    Measured on a float64 copy of ``model``, then rounded to float32: in float32 the last bits
    of the maxima follow torch's summation order, which follows its thread count, and so did the
    int8 export and some labels (an export made on one thread differed from one made on two).
    In float64 that noise is far below float32's rounding, so the maxima come out the same
    whatever the threads (``tests/test_smoothing.py``, where float32 maxima differ), and so did
    the export's SHA-256 on one thread and on two."""
    import copy

    import torch

    from selfheal.model.runtime import Tokenized, pad

    model = copy.deepcopy(model).double().eval()
    maxima: dict[str, Any] = {}
    hooks = []
    for name, module in model.encoder.named_modules():
        if isinstance(module, torch.nn.Linear):

            def record(_: Any, inputs: Any, __: Any, name: str = name) -> None:
                x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
                maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

            hooks.append(module.register_forward_hook(record))
    try:
        tokens = Tokenized(tokenizer, list(texts), max_length)
        pad_id = tokenizer.pad_token_id or 0
        with torch.no_grad():
            for ids in tokens.ids:
                input_ids, mask = pad([ids], pad_id)
                model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: values.float() for name, values in maxima.items()}


def smooth(model: Any, maxima: dict[str, Any], alpha: float = ALPHA) -> Any:
    """``model`` with every linear layer of its encoder named in ``maxima`` replaced by its
    smoothed equivalent (same outputs up to rounding), in place; returns ``model``."""
    import torch

    class SmoothedLinear(torch.nn.Module):
        """``linear(x / s)`` with the weight's columns multiplied by ``s``."""

        def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor) -> None:
            super().__init__()
            self.inverse = torch.nn.Parameter((1.0 / scale).float(), requires_grad=False)
            self.linear = torch.nn.Linear(
                linear.in_features, linear.out_features, bias=linear.bias is not None
            )
            self.linear.weight = torch.nn.Parameter(
                linear.weight.detach() * scale[None, :], requires_grad=False
            )
            if linear.bias is not None:
                self.linear.bias = torch.nn.Parameter(linear.bias.detach(), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x * self.inverse)

    for parent_name, parent in list(model.encoder.named_modules()):
        for child_name, child in list(parent.named_children()):
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, torch.nn.Linear) and name in maxima:
                weight = child.weight.detach().abs().amax(0).clamp(min=1e-5)
                scale = (maxima[name].clamp(min=1e-5) ** alpha / weight ** (1 - alpha)).clamp(min=1e-5)
                setattr(parent, child_name, SmoothedLinear(child, scale))
    return model


def smoothed_model(model: Any, tokenizer: Any, alpha: float = ALPHA) -> Any:
    """``model`` smoothed for int8 with maxima measured on :func:`calibration_texts`."""
    return smooth(model, activation_maxima(model, tokenizer, calibration_texts()), alpha)
