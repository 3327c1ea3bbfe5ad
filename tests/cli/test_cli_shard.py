"""``colorize reels/ -o out/ --shard K/N``: the N runs together write every output exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli_colorize import invoke
from tests.pipeline.fakes import make_clip, make_still


@pytest.fixture
def archive(tmp_path) -> Path:
    reels = tmp_path / "reels"
    (reels / "b").mkdir(parents=True)
    for i, frames in enumerate([6, 2, 4, 3, 5]):
        make_clip((reels / "b" if i % 2 else reels) / f"reel{i}.mp4", frames=frames, width=32, height=32,
                  audio=False)
    make_still(reels / "photo.png")
    return reels


def _run(reels: Path, out: Path, spec: str, *extra) -> tuple[int, list[dict], str]:
    r = invoke(reels, "-o", f"{out}/", "--model", "fake", "--device", "cpu", "--json", "--shard", spec, *extra)
    return r.exit_code, [json.loads(line) for line in r.stdout.splitlines()], r.stderr


@pytest.mark.parametrize("n", [1, 3, 8])
def test_n_shards_write_every_output_exactly_once(tmp_path, register_fake, archive, n):
    register_fake("fake")
    out = tmp_path / "out"
    done: list[str] = []
    for k in range(n):
        code, records, stderr = _run(archive, out, f"{k}/{n}")
        assert code == 0, stderr
        assert f"shard {k}/{n} (0-based)" in stderr
        assert all(r["status"] == "done" for r in records)
        done += [r["input"] for r in records]
    inputs = sorted(str(p) for p in archive.rglob("*") if p.is_file())
    assert sorted(done) == inputs  # every input once: none twice, none missing
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and not p.name.endswith(".json"))
    assert outputs == ["b/reel1_colorized.mp4", "b/reel3_colorized.mp4", "photo_colorized.png",
                       "reel0_colorized.mp4", "reel2_colorized.mp4", "reel4_colorized.mp4"]


def test_rerun_gets_the_same_part_and_skips_it(tmp_path, register_fake, archive):
    register_fake("fake")
    out = tmp_path / "out"
    first = [_run(archive, out, f"{k}/3")[1] for k in range(3)]
    again = [_run(archive, out, f"{k}/3")[1] for k in range(3)]
    for a, b in zip(first, again):
        assert [r["input"] for r in a] == [r["input"] for r in b]
        assert all(r["status"] == "skipped" for r in b)


@pytest.mark.parametrize("spec, words", [
    ("3/2", "between 0 and 1"),
    ("2/2", "0-based"),
    ("0/0", "at least 1"),
    ("x", "expected K/N"),
])
def test_bad_shard_is_a_usage_error(tmp_path, register_fake, archive, spec, words):
    register_fake("fake")
    code, records, stderr = _run(archive, tmp_path / "out", spec)
    assert code == 2 and records == []
    assert "--shard': --shard" not in stderr and words in stderr  # one clear line, option named once
    assert not (tmp_path / "out").exists()
