"""``selfheal export-onnx``: export the checkpoint's encoders to ONNX into the cache now."""

from __future__ import annotations

from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, fail, get_config, user_errors


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="onnx or onnx-int8 (default: model.runtime when it is one of them, else both).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Export again even if a verified export exists.")
    ] = False,
) -> None:
    """Export the MiniLM classifier and the sentence embedder to ONNX (in $SELFHEAL_CACHE/onnx).

    Otherwise they are exported on first use with model.runtime=onnx or onnx-int8; each load
    checks the files against their stored digest and exports them again if they changed.
    """
    import contextlib
    import shutil

    from selfheal.model.checkpoint import quiet_hf, read_meta, resolve_base_model, resolve_checkpoint
    from selfheal.model.runtime import ONNX_RUNTIMES

    cfg = get_config(config, overrides)
    if runtime is not None and runtime not in ONNX_RUNTIMES:
        fail(f"--runtime '{runtime}' is not one of {', '.join(ONNX_RUNTIMES)}")
    if runtime is not None:
        runtimes = [runtime]
    elif cfg.model.runtime in ONNX_RUNTIMES:
        runtimes = [cfg.model.runtime]
    else:
        runtimes = list(ONNX_RUNTIMES)
    from selfheal.model.backup import zero_shot_runtime
    from selfheal.model.classifier import Classifier, classifier_export_key, voter_states_budget
    from selfheal.model.embedder import (
        EmbedderNotInstalled,
        EmbeddingHead,
        SentenceEncoder,
        embedder_export_key,
        embedder_runtime,
        resolve_embedder,
    )
    from selfheal.model.runtime import export_dir
    from selfheal.model.top_layers import TopLayersBackup, has_top

    quiet_hf()
    checkpoint = resolve_checkpoint(cfg.paths.checkpoint)
    meta = read_meta(checkpoint)
    for name in runtimes:
        if force:
            keys = [classifier_export_key(checkpoint, meta, name)]
            if cfg.embedder.enabled and float(meta.get("embedder_weight", 0.0)) > 0:
                with contextlib.suppress(EmbedderNotInstalled):  # the load below says so
                    path = resolve_embedder(meta.get("embedder_model"))
                    layers = _one_based(path, EmbeddingHead.load(checkpoint).layers)
                    for after in {None, _voter_start(path, checkpoint)}:  # with the voter's states or not
                        keys.append(
                            embedder_export_key(
                                path, layers, embedder_runtime(name, cfg.embedder.int8), after
                            )
                        )
            if "embedding" in cfg.backup.models:
                base = resolve_base_model(None)
                keys.append(embedder_export_key(base, _one_based(base, (-1,)), zero_shot_runtime(name)))
            for key in keys:
                shutil.rmtree(export_dir(key), ignore_errors=True)
        classifier = Classifier.load(
            checkpoint,
            use_embedder=cfg.embedder.enabled,
            use_knowability=False,
            runtime=name,
            threads=cfg.model.threads,
            embedder_int8=cfg.embedder.int8,
            voter_states=voter_states_budget(cfg),
        )
        exports = dict(classifier.exports)
        if "embedding" in cfg.backup.models:  # the MiniLM of the embedding zero-shot backup
            backup = SentenceEncoder(
                resolve_base_model(None),
                (-1,),
                max_length=128,
                runtime=zero_shot_runtime(name),
                threads=cfg.model.threads,
            )
            exports["backup embedding"] = backup.export(backup.runtime)
        if "mpnet_top" in cfg.backup.models and has_top(checkpoint):  # the no-person voter
            voter = TopLayersBackup(
                checkpoint,
                resolve_embedder(cfg.embedder.model),
                runtime=name,
                threads=cfg.model.threads,
                force_export=force,
                states=classifier.voter_states,
            )
            if voter.export_path is not None:
                exports["backup mpnet_top"] = voter.export_path
        for kind, path in exports.items():
            size = path.stat().st_size / 1e6
            typer.echo(f"{name}: {kind} {path} ({size:.1f} MB)")


def _voter_start(path: str, checkpoint: object) -> int | None:
    """The layer after which the checkpoint's voter starts (``None``: no voter, or unreadable)."""
    from selfheal.model.embedder import EncoderConfig
    from selfheal.model.top_layers import top_settings

    settings = top_settings(checkpoint)  # type: ignore[arg-type]
    try:
        return EncoderConfig.read(path).num_hidden_layers - int(settings["recipe"]["top"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _one_based(path: str, layers: tuple[int, ...]) -> list[int]:
    """The head's layers as the encoder numbers them (1-based; negative ones from the top)."""
    from selfheal.model.embedder import EncoderConfig

    depth = EncoderConfig.read(path).num_hidden_layers
    return [layer if layer > 0 else depth + 1 + layer for layer in layers]
