"""Cross-check against a peer: the same deterministic tournament in axelrod and in society."""

from __future__ import annotations

import pytest

pytest.importorskip("axelrod")

from bench.tournament import PAIRS, run_axelrod, run_society  # noqa: E402

pytestmark = [pytest.mark.axelrod, pytest.mark.slow]


def test_identical_total_scores_per_strategy(tmp_path):
    ours = run_society(turns=100, copies=1, out=tmp_path / "run")
    theirs = run_axelrod(turns=100, copies=1)
    assert len(ours) == len(PAIRS)
    assert ours == theirs
