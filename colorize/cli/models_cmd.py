"""``colorize models``: the registered models, their shipped weights, and whether they load."""

from __future__ import annotations

import json
import re
import shutil
import sys
import textwrap

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
        "data": _describe_data(rec.get("data")),
        "steps": rec.get("steps"),
        "metrics": rec.get("metrics") or rec.get("eval"),
    }
    if file:
        path = WEIGHTS_DIR / file
        out["path"] = str(path)
        if path.is_file():
            out["size_bytes"] = path.stat().st_size
    return out


def _describe_data(text: str | None) -> str | None:
    """What the training data was, without the development setup's folder names (a user has no
    ``shared/data``; "dev_eval" is the held-out evaluation set)."""
    if not text:
        return text
    text = re.sub(r"\bshared/data\s+", "", text)
    return text.replace("never dev_eval", "never the held-out evaluation clips")


def _try_load(name: str) -> tuple[bool, str]:
    from colorize.models.registry import create_model

    try:
        create_model(name, device="cpu")
    except Exception as exc:  # noqa: BLE001 - the point is to report any failure, in one line
        text = str(exc).strip().splitlines()
        return False, text[0] if text else type(exc).__name__
    return True, "ok"


def _fmt_figures(m) -> str:
    """The evaluation figures a user compares models by: PSNR gain over the grey input, and
    colourfulness and flicker as ratios of the originals' (1.0 = as colourful / as steady as them)."""
    if not isinstance(m, dict) or not m:
        return "-"
    ev = m.get("dev_eval") if isinstance(m.get("dev_eval"), dict) else {}
    gain = m.get("psnr_gain_db", ev.get("psnr_gain"))
    parts = []
    if isinstance(gain, (int, float)):
        parts.append(f"PSNR gain {gain:+.2f} dB")
    for key, label in (("colourfulness_ratio", "colourfulness"), ("flicker_ratio", "flicker")):
        if isinstance(ev.get(key), (int, float)):
            parts.append(f"{label} {ev[key]:.2f}")
    if not parts:
        return "-"
    text = ", ".join(parts) + " (colourfulness and flicker: output / original)"
    where = m.get("eval_mode")
    if isinstance(where, str):
        text += "; " + where.replace("dev_eval clips", "held-out evaluation clips").replace(
            "dev_eval clip", "held-out evaluation clip")
    return text


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
            # which default: "automatic" (no --ref), "reference" (with --ref), or None
            "default_for": ("automatic" if name == DEFAULT_AUTO_MODEL else
                            "reference" if name == DEFAULT_REFERENCE_MODEL else None),
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
        click.echo(_render(rows, no_load))
    failing = [r for r in rows if r.get("loads") is False and r["weights"].get("file")]
    return EXIT_FAILED if failing else EXIT_OK


_DEFAULT_TEXT = {"automatic": "default automatic model", "reference": "default model with --ref"}


def _render(rows: list[dict], no_load: bool) -> str:
    """One block per model, a labelled line per fact, wrapped to the terminal (100 columns when
    piped): as readable in a log as on screen, however long a value is."""
    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    width = max(60, width)
    blocks = []
    for rec in rows:
        w = rec["weights"]
        head = rec["name"]
        notes = [_DEFAULT_TEXT[rec["default_for"]]] if rec["default_for"] else []
        if rec["needs_reference"]:
            notes.append("needs --ref")
        if notes:
            head += f" ({', '.join(notes)})"
        if w.get("file"):
            weights = f"{w['file']}, {_fmt_size(w['size_bytes'])}, sha256 {(w['sha256'] or '-')[:16]}"
            if w.get("params"):
                weights += f", {w['params']:,} parameters"
            if w.get("steps"):
                weights += f", {w['steps']:,} training steps"
        else:
            weights = "none shipped: your own copy (--weights)"
        facts = [("model", rec["summary"]), ("paper", rec["paper"]), ("weights", weights),
                 ("data", w.get("data") or "-"), ("figures", _fmt_figures(w.get("metrics")))]
        if not no_load:
            facts.append(("loads", "yes" if rec["loads"] else f"no: {rec['load_message']}"))
        lines = [head]
        for label, value in facts:
            lines += textwrap.wrap(str(value), width, initial_indent=f"  {label + ':':9}",
                                   subsequent_indent=" " * 11, break_on_hyphens=False) or [f"  {label}:"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
