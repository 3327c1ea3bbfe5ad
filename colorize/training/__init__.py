"""Training (``colorize train``). Never imported by the inference path."""

from __future__ import annotations


def cli_train(model: str, data, resume: bool = False, out=None, on_log=None, **options) -> dict:
    """Train ``model`` on folders of colour photos/clips; checkpoints and log.csv go to ``out``.

    ``options`` are :class:`~colorize.training.trainer.TrainConfig` fields (steps, batch, size, lr,
    init, precision, threads, ...); ``None`` means "the default". Other keys are ignored.
    ``resume`` restores net, optimiser, step and RNG from ``out/last.pt``; give the same options as
    the first run (a larger ``steps`` extends it).
    """
    from pathlib import Path

    from colorize.training.trainer import Trainer, TrainConfig

    out = Path(out) if out else Path.home() / ".cache" / "colorize" / "runs" / model
    given = {k: v for k, v in options.items() if v is not None and k in TrainConfig.__dataclass_fields__}
    if given.get("init"):
        given["init"] = str(given["init"])
    cfg = TrainConfig(model=model, data=tuple(str(d) for d in data), out=str(out), **given)
    trainer = Trainer(cfg)
    if resume:
        trainer.resume()
    return trainer.run(on_log=on_log)
