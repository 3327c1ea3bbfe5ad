"""``colorize models``: the registered models, their shipped weights, and whether they load."""

from __future__ import annotations

import json
import sys

import click

from colorize.cli.options import EXIT_FAILED, EXIT_OK, json_option


def _weights_record(name: str, info) -> dict:
    from colorize.models.registry import WEIGHTS_DIR, read_manifest

    rec = dict(read_manifest().get(name) or {})
    file = rec.get("file") or info.weights_file
    out = {
        "file": file,
        "size_bytes": None,
        "sha256": rec.get("sha256"),
        "params": rec.get("params"),
        "data": rec.get("data"),
        "steps": rec.get("steps"),
        "metrics": rec.get("metrics") or rec.get("eval"),
    }
    if file:
        path = WEIGHTS_DIR / file
        out["path"] = str(path)
        if path.is_file():
            out["size_bytes"] = path.stat().st_size
    return out


def _try_load(name: str) -> tuple[bool, str]:
    from colorize.models.registry import create_model

    try:
        create_model(name, device="cpu")
    except Exception as exc:  # noqa: BLE001 - the point is to report any failure, in one line
        text = str(exc).strip().splitlines()
        return False, text[0] if text else type(exc).__name__
    return True, "ok"


def _fmt_metrics(m) -> str:
    if not m:
        return "-"
    if isinstance(m, dict):
        parts = []
        for k, v in m.items():
            if isinstance(v, float):
                v = f"{v:.3g}"
            elif isinstance(v, (dict, list)):
                continue
            parts.append(f"{k}={v}")
        return ", ".join(parts) or "-"
    return str(m)


def _fmt_size(n) -> str:
    if n is None:
        return "missing"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


@click.command("models", context_settings={"help_option_names": ["-h", "--help"]})
@json_option("Print one JSON object per model on stdout.")
@click.option("--no-load", is_flag=True, help="Do not try to build each model (faster).")
def models_command(as_json: bool, no_load: bool) -> None:
    """List the registered models: weights file, size, sha256, parameters, training data,
    evaluation figures, and whether each one loads."""
    sys.exit(report_models(as_json, no_load))


def report_models(as_json: bool = False, no_load: bool = False) -> int:
    """Print the models table (or JSON lines); 1 when a model with shipped weights fails to load."""
    from colorize.models.registry import get_model_info, list_models
    from colorize.pipeline.config import DEFAULT_AUTO_MODEL, DEFAULT_REFERENCE_MODEL

    rows = []
    for name in list_models():
        info = get_model_info(name)
        rec = {
            "name": name,
            "summary": info.summary,
            "paper": info.paper,
            "needs_reference": info.needs_reference,
            "supports_diverse": info.supports_diverse,
            "default": name in (DEFAULT_AUTO_MODEL, DEFAULT_REFERENCE_MODEL),
            "weights": _weights_record(name, info),
        }
        if not no_load:
            ok, why = _try_load(name)
            rec["loads"], rec["load_message"] = ok, why
        rows.append(rec)

    if as_json:
        for rec in rows:
            click.echo(json.dumps(rec))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="colorize models", show_lines=True)
        for col in ("model", "weights", "size", "sha256", "params", "data", "eval", "loads"):
            table.add_column(col, overflow="fold")
        for rec in rows:
            w = rec["weights"]
            name = rec["name"] + (" (default)" if rec["default"] else "")
            loads = "-" if no_load else ("yes" if rec["loads"] else f"no: {rec['load_message']}")
            table.add_row(
                name, w.get("file") or "user-supplied (--weights)",
                _fmt_size(w["size_bytes"]) if w.get("file") else "-",
                (w["sha256"] or "-")[:16], str(w["params"] or "-"), str(w["data"] or "-"),
                _fmt_metrics(w["metrics"]), loads,
            )
        Console(width=max(100, Console().width)).print(table)
    failing = [r for r in rows if r.get("loads") is False and r["weights"].get("file")]
    return EXIT_FAILED if failing else EXIT_OK
