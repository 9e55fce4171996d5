"""Every plot builds a Figure from a real (small) run store."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from analysis import load_run, plots, tipping  # noqa: E402
from tests.test_analysis_cooperation import _donor_run  # noqa: E402
from tests.test_analysis_run import make_store  # noqa: E402


def test_plots_return_figures(tmp_path):
    run = load_run(make_store(tmp_path / "r"))
    assert isinstance(plots.cooperation_over_time(run), Figure)
    assert isinstance(plots.cooperation_over_time(run, group=None), Figure)
    assert isinstance(plots.entropy_over_time(run), Figure)
    assert isinstance(plots.network_snapshot(run, period=None), Figure)
    assert isinstance(plots.resources_per_generation(_donor_run()), Figure)
    d = [0.0]
    for _ in range(10):
        d.append(d[-1] + 1 - 0.5 * d[-1] + 0.01 * (-1) ** len(d))
    assert isinstance(plots.drift_curve(d), Figure)
    rng = np.random.default_rng(0)
    ew = tipping.early_warning(rng.normal(size=60) + 5, n_surrogates=9)
    fig = plots.early_warning_panel(ew)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
