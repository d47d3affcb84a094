"""Copy a trained checkpoint into the package (src/selfheal/checkpoints/default).

Usage: python scripts/ship_checkpoint.py runs/latest
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from selfheal.model.card import rewrite_model_card

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "selfheal" / "checkpoints" / "default"


def main(source: str) -> None:
    """Replace the shipped checkpoint with ``source``."""
    src = Path(source)
    if not (src / "selfheal.json").exists():
        sys.exit(f"error: {src} is not a selfheal checkpoint (no selfheal.json)")
    tmp = SHIPPED.with_name("default.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(SHIPPED, ignore_errors=True)
    tmp.rename(SHIPPED)
    rewrite_model_card(SHIPPED)  # with the recipe-search table as recorded now
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()) / 1e6
    print(f"shipped {src} -> {SHIPPED} ({size:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/latest")
