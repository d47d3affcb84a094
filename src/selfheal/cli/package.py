"""``selfheal package-model`` and ``selfheal push``: ship the checkpoint as a zip or to a hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, get_config, user_errors


@user_errors
def package_model(
    config: ConfigOption = None,
    overrides: SetOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory of the zip (paths.dist_dir).")] = None,
) -> None:
    """Pack the configured checkpoint (paths.checkpoint) into <out>/selfheal-<version>.zip."""
    from selfheal.model.checkpoint import resolve_checkpoint
    from selfheal.model.package import write_zip

    cfg = get_config(config, overrides, {"paths.dist_dir": out})
    package = write_zip(resolve_checkpoint(cfg.paths.checkpoint), cfg.paths.dist_dir)
    typer.echo(
        f"wrote {package.path} ({len(package.files)} files + SHA256SUMS, {package.size / 1e6:.1f} MB, "
        f"sha256 {package.sha256[:16]}); unzip it and run: selfheal run --set paths.checkpoint={package.name}"
    )


@user_errors
def push(
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repository OWNER/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Upload the configured checkpoint's package files to a Hugging Face Hub model repository.

    The token comes from HF_TOKEN or 'hf auth login'; the endpoint from HF_ENDPOINT.
    """
    from selfheal.model.checkpoint import resolve_checkpoint
    from selfheal.model.hub import push as push_model

    cfg = get_config(config, overrides)
    result = push_model(resolve_checkpoint(cfg.paths.checkpoint), repo_id, private=private)
    typer.echo(f"pushed {len(result.files)} files + SHA256SUMS to {result.repo_url} ({result.commit_url})")
