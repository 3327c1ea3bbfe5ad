from fractions import Fraction

import pytest
import torch

from colorize.pipeline.references import (
    Reference, ReferenceChooser, ReferenceError, RefSpec, TimePoint, parse_ref, parse_timepoint,
)
from tests.pipeline.fakes import make_still


def test_timepoints():
    assert parse_timepoint("1500") == TimePoint(frame=1500)
    assert parse_timepoint("01:10").seconds == 70
    assert parse_timepoint("00:01:10.5").seconds == pytest.approx(70.5)
    tp = parse_timepoint("00:01:10:12")
    assert tp.seconds == 70 and tp.frame_at(Fraction(24)) == 70 * 24 + 12
    for bad in ("1:2:3:4:5", "00:75", "00:00:10:1.5"):
        with pytest.raises(ReferenceError):
            parse_timepoint(bad)


def test_parse_ref_forms(tmp_path):
    still = make_still(tmp_path / "a.png")
    (tmp_path / "at@home.png").write_bytes(still.read_bytes())
    assert parse_ref(str(still)) == [RefSpec(still)]
    # '@' inside a real file name is part of the name, not a range
    assert parse_ref(str(tmp_path / "at@home.png"))[0].path == tmp_path / "at@home.png"
    spec = parse_ref(f"{still}@00:01:10-00:02:30")[0]
    assert spec.path == still and spec.start.seconds == 70 and spec.end.seconds == 150
    spec = parse_ref(f"{still}@100-")[0]
    assert spec.start.frame == 100 and spec.end is None
    folder = tmp_path / "stills"
    folder.mkdir()
    make_still(folder / "b.jpg")
    make_still(folder / "a.png")
    (folder / "notes.txt").write_text("x")
    assert [s.path.name for s in parse_ref(str(folder))] == ["a.png", "b.jpg"]


@pytest.mark.parametrize("spec, msg", [
    ("missing.jpg", "no such file"),
    ("{still}@00:02:00-00:01:00", "ends before"),
    ("{still}@200-100", "ends before"),
    ("{still}@soon", "bad time range"),
    ("{folder}", "no images"),
    ("{folder}@1-2", "needs one still"),
])
def test_parse_ref_errors(tmp_path, spec, msg):
    still = make_still(tmp_path / "s.png")
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ReferenceError, match=msg):
        parse_ref(spec.format(still=still, folder=folder).replace("missing.jpg", str(tmp_path / "missing.jpg")))


def _ref(path, lightness, start=None, end=None):
    lab = torch.zeros(1, 3, 4, 4)
    lab[:, 0] = lightness
    return Reference(RefSpec(path, start, end), "0" * 64, lab)


def test_chooser_prefers_time_range_then_best_score():
    dark, bright = _ref("dark.jpg", 20.0), _ref("bright.jpg", 80.0)
    ranged = _ref("ranged.jpg", 50.0, TimePoint(seconds=10.0), TimePoint(seconds=20.0))
    chooser = ReferenceChooser([dark, bright, ranged], Fraction(25))
    score = lambda l, ref_lab: -abs(float(l.mean()) - float(ref_lab[0, 0].mean()))  # noqa: E731
    assert chooser.choose(0, 0.0, torch.full((1, 8, 8), 75.0), score) is bright
    assert chooser.choose(100, 4.0, torch.full((1, 8, 8), 25.0), score) is dark
    assert chooser.choose(250, 10.0, torch.full((1, 8, 8), 25.0), score) is ranged
    assert chooser.range_key(499, 19.96) == id(ranged) and chooser.range_key(500, 20.0) is None
    reasons = [s["reason"] for s in chooser.shots]
    assert reasons == ["best match", "best match", "time range"]
    assert chooser.shots[0]["scores"]["bright.jpg"] > chooser.shots[0]["scores"]["dark.jpg"]


def test_frame_number_range_covers_by_index():
    r = _ref("r.jpg", 50.0, TimePoint(frame=10), TimePoint(frame=20))
    assert [r.covers(i, None, None) for i in (9, 10, 19, 20)] == [False, True, True, False]
