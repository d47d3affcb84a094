"""Figures of ``selfheal eval`` (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def reliability_diagram(panels: Sequence[tuple[str, dict[str, Any]]], path: Path) -> Path:
    """Side-by-side reliability diagrams, one per ``(title, calibration_report)`` panel.

    Bars are the accuracy of each confidence bin, the diagonal is perfect calibration and the
    red gap is accuracy minus mean confidence; the bin counts are drawn underneath.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        2, len(panels), figsize=(5 * len(panels), 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    axes = np.asarray(axes).reshape(2, len(panels))
    for col, (title, report) in enumerate(panels):
        bins = report["bins"]
        width = bins[0]["upper"] - bins[0]["lower"]
        centers = [(b["lower"] + b["upper"]) / 2 for b in bins]
        acc = [b["accuracy"] or 0.0 for b in bins]
        conf = [
            b["confidence"] if b["confidence"] is not None else c for b, c in zip(bins, centers, strict=True)
        ]
        top, bottom = axes[0, col], axes[1, col]
        top.bar(centers, acc, width=width, edgecolor="black", color="#4C72B0", label="accuracy")
        top.bar(
            centers,
            [a - c if b["count"] else 0.0 for a, c, b in zip(acc, conf, bins, strict=True)],
            bottom=conf,
            width=width,
            color="#DD8452",
            alpha=0.6,
            hatch="//",
            label="gap to confidence",
        )
        top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        ci = report["ece_ci95"]
        top.set_title(
            f"{title}\nECE {100 * report['ece']:.2f}% [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]  MCE {100 * report['mce']:.1f}%"
        )
        top.legend(loc="upper left", fontsize=8)
        bottom.bar(centers, [b["count"] for b in bins], width=width, edgecolor="black", color="#8C8C8C")
        bottom.set_xlabel("confidence (probability of the predicted label)")
        bottom.set_ylabel("count")
    fig.tight_layout()
    return _save(fig, path)


def confidence_histogram(
    series: Sequence[tuple[str, np.ndarray]], thresholds: tuple[float, float], path: Path
) -> Path:
    """Histogram of confidences for each ``(name, confidences)``, with the threshold lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    edges = np.linspace(0.5 if all(len(c) == 0 or c.min() >= 0.5 for _, c in series) else 0.0, 1.0, 26)
    for name, conf in series:
        ax.hist(conf, bins=edges, alpha=0.55, label=name, edgecolor="black", linewidth=0.4)
    accept, clarify = thresholds
    ax.axvline(accept, color="green", linestyle="--", label=f"accept >= {accept}")
    ax.axvline(clarify, color="red", linestyle=":", label=f"clarify >= {clarify}")
    ax.set_xlabel("confidence")
    ax.set_ylabel("inputs")
    ax.set_title("Confidence of the primary model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def risk_coverage_plot(curve: Sequence[dict[str, Any]], threshold: float, path: Path) -> Path:
    """Accuracy of auto-accepted predictions and coverage against the accept threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [p["threshold"] for p in curve]
    ax.plot(
        xs,
        [p["accuracy"] if p["accuracy"] is not None else np.nan for p in curve],
        "o-",
        markersize=3,
        label="accuracy on accepted",
    )
    ax.plot(xs, [p["coverage"] for p in curve], "s-", markersize=3, label="coverage (share accepted)")
    ax.axvline(threshold, color="gray", linestyle="--", label=f"configured accept = {threshold}")
    ax.set_xlabel("accept threshold")
    ax.set_ylim(0, 1.02)
    ax.set_title("Risk-coverage of the primary model")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)
