"""The worked notebooks run top to bottom on runs made by the test (SOCIETY_RUN)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from society.runner import start_run  # noqa: E402
from society.scenario import load_scenario  # noqa: E402
from tests.helpers import cli_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

pytestmark = pytest.mark.slow

CASES = {
    "repeated_games": ("ipd_tournament.yaml", ["game.rounds=50"]),
    "donor_game": ("donor_game_scripted.yaml", ["evolution.generations=3"]),
    "atp": ("atp_diffusion_known_tipping.yaml", []),
    "commons": ("commons_scripted.yaml", []),
    "drift_dialogue": ("drift_dialogue_scripted.yaml", []),
    "marketplace": ("marketplace_baselines.yaml", []),
    "social_feed": ("social_feed_scripted.yaml", []),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario, overrides = CASES[name]
    run_dir = tmp_path / "run"
    start_run(load_scenario(ROOT / "scenarios" / scenario, overrides), run_dir, quiet=True)
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    # Shipped notebooks carry no outputs.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path
    monkeypatch.setenv("SOCIETY_RUN", str(run_dir))
    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # The run read is the test's run, and at least one figure was shown.
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "Run(" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
