"""``selfheal train``: fine-tune with LoRA, calibrate, fit the backups, save a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfheal.cli.common import ConfigOption, SetOption, get_config, user_errors


@user_errors
def command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where to write the checkpoint.")] = None,
    sample: Annotated[int | None, typer.Option(help="Train on a stratified sample of N examples.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Hugging Face model id or local path.")] = None,
    data: Annotated[
        str | None, typer.Option(help="rotten_tomatoes, tweets, a text,label CSV/JSONL file, or hf:<name>.")
    ] = None,
    include_clarified: Annotated[
        bool, typer.Option("--include-clarified", help="Add user-clarified examples to the train split.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fine-tune the model with LoRA, calibrate it, train the backup and save a checkpoint."""
    cfg = get_config(
        config,
        overrides,
        {
            "paths.output_dir": output_dir,
            "data.sample": sample,
            "training.epochs": epochs,
            "model.base_model": base_model,
            "data.source": data,
            "data.include_clarified": True if include_clarified else None,
        },
    )
    from selfheal.model.train import train as run_training

    clarified = None
    if cfg.data.include_clarified:
        from selfheal.logs.clarified import load_clarified

        clarified = load_clarified(cfg.paths.clarified)
        typer.echo(f"including {len(clarified)} clarified examples from {cfg.paths.clarified}")
    result = run_training(cfg, clarified=clarified, quiet=quiet)
    if result.checks:
        typer.echo(
            "data checks: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.checks.items())
        )
    test = result.metrics["test"]
    typer.echo(
        f"saved {result.output_dir} | best epoch {result.best_epoch} | T={result.temperature:.3f} | "
        f"test acc {test['accuracy']:.4f} macro-F1 {test['f1_macro']:.4f} | {result.seconds / 60:.1f} min"
    )


@user_errors
def voter_command(
    config: ConfigOption = None,
    overrides: SetOption = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="The checkpoint to add the voter to (default: paths.checkpoint, else the shipped one)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (voter.epochs).")] = None,
    top: Annotated[int | None, typer.Option(help="mpnet layers fine-tuned (voter.top).")] = None,
) -> None:
    """Train the no-person voter (``mpnet_top``: mpnet's last layers with LoRA) into a checkpoint."""
    cfg = get_config(
        config,
        overrides,
        {"paths.checkpoint": checkpoint, "voter.epochs": epochs, "voter.top": top},
    )
    from selfheal.model.checkpoint import quiet_hf, resolve_checkpoint
    from selfheal.model.top_layers import TopLayersRecipe, train_voter

    directory = resolve_checkpoint(cfg.paths.checkpoint)
    vc = cfg.voter
    recipe = TopLayersRecipe(
        top=vc.top,
        rank=vc.rank,
        epochs=vc.epochs,
        lr=vc.learning_rate,
        seed=vc.seed,
        batch_size=vc.batch_size,
    )
    quiet_hf()
    typer.echo(
        f"training the voter (mpnet's last {recipe.top} layers, {recipe.epochs} epochs) for {directory}"
    )
    result = train_voter(cfg, directory, recipe, log=typer.echo)
    if (directory / "training_config.yaml").is_file():  # the card lists the voter
        from selfheal.model.card import rewrite_model_card

        rewrite_model_card(directory)
    typer.echo(
        f"saved {result['directory']} | validation acc {result['validation_accuracy']:.4f} | "
        f"{result['seconds'] / 60:.1f} min; refit the no-person rule with 'selfheal eval'"
    )
