"""Training (``colorize train``). Never imported by the inference path."""

from __future__ import annotations


def cli_train(model: str, data, steps: int = 20000, resume: bool = False, out=None, batch: int = 6,
              size: int = 128, lr: float = 1e-3, seed: int = 0, on_log=None, **extra) -> dict:
    """Train ``model`` on folders of colour photos/clips; checkpoints and log.csv go to ``out``."""
    from pathlib import Path

    from colorize.training.trainer import Trainer, TrainConfig

    out = Path(out) if out else Path.home() / ".cache" / "colorize" / "runs" / model
    cfg = TrainConfig(model=model, data=tuple(str(d) for d in data), out=str(out), steps=steps,
                      batch=batch, size=size, lr=lr, seed=seed,
                      **{k: v for k, v in extra.items() if k in TrainConfig.__dataclass_fields__})
    trainer = Trainer(cfg)
    if resume:
        trainer.resume()
    return trainer.run(on_log=on_log)
