"""``--shard K/N``: parsing, and parts that are disjoint, complete, balanced and stable."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from colorize.pipeline.errors import UsageError
from colorize.pipeline.inputs import Job, plan_jobs
from colorize.pipeline.shard import Shard, assign, select_shard, shard_key
from tests.pipeline.fakes import make_clip


def test_parse_valid_specs():
    assert Shard.parse("0/1") == Shard(0, 1)
    assert Shard.parse("3/8") == Shard(3, 8)
    assert Shard.parse(" 7 / 8 ") == Shard(7, 8)
    assert str(Shard.parse("2/5")) == "2/5"


@pytest.mark.parametrize("text, words", [
    ("3/2", "between 0 and 1"),
    ("2/2", "0-based"),          # a 1-based last task id: told to pass K-1
    ("0/0", "at least 1"),
    ("-1/2", "expected K/N"),
    ("a/b", "expected K/N"),
    ("1-2", "expected K/N"),
    ("1/2/3", "expected K/N"),
    ("", "expected K/N"),
])
def test_parse_rejects_bad_specs(text, words):
    with pytest.raises(UsageError, match=words):
        Shard.parse(text)


def test_assign_is_disjoint_complete_and_balanced():
    rng = random.Random(14)
    weights = [rng.randint(1, 130_000) for _ in range(1000)]
    keys = [(0, f"reel{i:04d}.mkv") for i in range(1000)]
    for n in (1, 2, 7, 64):
        parts = assign(weights, keys, n)
        assert len(parts) == len(weights) and set(parts) <= set(range(n))
        loads = [sum(w for w, p in zip(weights, parts) if p == k) for k in range(n)]
        assert sum(loads) == sum(weights)
        # LPT: no part exceeds the ideal share by more than one file
        assert max(loads) - sum(weights) / n <= max(weights)
        if n <= 7:  # 1,000 films over a few nodes: within 5 % of the ideal share
            assert max(loads) / (sum(weights) / n) < 1.05


def test_assign_ignores_input_order():
    weights = [5, 9, 9, 1, 3, 7]
    keys = [(0, c) for c in "abcdef"]
    parts = dict(zip(keys, assign(weights, keys, 3)))
    perm = [4, 2, 0, 5, 1, 3]
    shuffled = dict(zip([keys[i] for i in perm], assign([weights[i] for i in perm], [keys[i] for i in perm], 3)))
    assert parts == shuffled
    # equal weights are split by key, not by position: b and c (both 9) land in different parts
    assert parts[(0, "b")] != parts[(0, "c")]


def test_more_parts_than_files_leaves_some_empty():
    parts = assign([10, 20], [(0, "a"), (0, "b")], 5)
    assert sorted(parts) == [0, 1]


def _job(path: str, frames: int | None) -> Job:
    info = None if frames is None else SimpleNamespace(frame_estimate=frames, frames=frames)
    return Job(Path(path), Path(path + ".out.mp4"), info, None if info else "unreadable")


def test_key_is_relative_to_the_input_so_mount_points_do_not_matter():
    a = _job("/mnt/a/reels/x/1.mp4", 10)
    b = _job("/data/reels/x/1.mp4", 10)
    assert shard_key(a, [Path("/mnt/a/reels")]) == shard_key(b, [Path("/data/reels")]) == (0, "x/1.mp4")
    assert shard_key(_job("film.mp4", 3), [Path("other/"), Path("film.mp4")]) == (1, "film.mp4")


def test_unreadable_inputs_still_land_in_exactly_one_part():
    jobs = [_job(f"r/{i}.mp4", None if i % 3 == 0 else 100 * i) for i in range(10)]
    seen = []
    for k in range(4):
        seen += [j.input for j in select_shard(jobs, [Path("r")], Shard(k, 4))]
    assert sorted(seen) == sorted(j.input for j in jobs)


def test_real_folder_same_parts_when_copied_elsewhere(tmp_path):
    """Two machines mounting the archive at different places get the same parts."""
    src = tmp_path / "site_a" / "reels"
    (src / "sub").mkdir(parents=True)
    for i, frames in enumerate([3, 9, 5, 5, 2]):
        make_clip((src / "sub" if i % 2 else src) / f"reel{i}.mp4", frames=frames, width=32, height=32, audio=False)
    dst = tmp_path / "site_b" / "mount" / "reels"
    shutil.copytree(src, dst)

    def names(root: Path, k: int) -> list[str]:
        jobs = plan_jobs([root], tmp_path / "out" / "", None)
        return [j.input.relative_to(root).as_posix() for j in select_shard(jobs, [root], Shard(k, 2))]

    a = [names(src, k) for k in range(2)]
    b = [names(dst, k) for k in range(2)]
    assert a == b
    assert sorted(a[0] + a[1]) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*.mp4"))
    assert not set(a[0]) & set(a[1])
    # balanced by frames, not by file count: 9 + 3 frames against 5 + 5 + 2
    assert sorted(len(x) for x in a) == [2, 3]
    assert "reel1.mp4" in "".join(min(a, key=len))
