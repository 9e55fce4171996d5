"""Run stores that cannot be used: damaged, of another format, read-only, full, or in use
by another process. Each is one line on stderr and exit status 2, and nothing already
committed is lost (row counts and bytes checked before and after)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from society.runner import start_run
from society.scenario import resolve
from society.store import RunLock, StoreError
from tests.helpers import (
    ROOT,
    assert_same_store,
    cli_env,
    interrupt_after,
    query,
    run_cli,
    society_cmd,
)

CLI = ("resume", "show", "analyze")


def scenario(agents: int = 20, rounds: int = 30, name: str = "faults") -> dict:
    return {
        "name": name,
        "seed": 9,
        "population": {
            "groups": [
                {"name": "rnd", "count": agents // 2, "strategy": {"name": "random", "p": 0.6}},
                {"name": "tft", "count": agents - agents // 2, "strategy": "tit_for_tat"},
            ]
        },
        "network": {"kind": "small_world", "k": 4, "p": 0.2},
        "game": {"kind": "repeated_2x2", "rounds": rounds, "noise": 0.05},
    }


def stopped_run(run_dir: Path, data: dict, cut: int, monkeypatch) -> Path:
    """A run stopped (KeyboardInterrupt) after `cut` committed steps: resumable."""
    interrupt_after(data, run_dir, cut, monkeypatch)
    assert rounds(run_dir) == cut
    return run_dir


def rounds(run_dir: Path) -> int:
    return query(run_dir, "SELECT COUNT(*) FROM rounds")[0][0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("society: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# -- damaged stores and other formats ----------------------------------------------------------
def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(8192))


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _zeroed_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), 3 * page):  # every third page, after the first two
        data[start : start + page] = b"\0" * min(page, len(data) - start)
    db.write_bytes(bytes(data))


def _format(version: str | None):
    def apply(db: Path) -> None:
        conn = sqlite3.connect(db)
        with conn:
            if version is None:
                conn.execute("DELETE FROM meta WHERE key = 'format_version'")
            else:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (version,))
        conn.close()

    return apply


FAULTS = {
    "garbage": (_garbage, ("not a readable society run store",)),
    "truncated": (_truncated, ("run.sqlite",)),
    "zeroed_pages": (_zeroed_pages, ("run.sqlite",)),
    "format_99": (_format("99"), ("format '99'",)),
    "format_1": (_format(None), ("format '1'",)),
}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A resumable run of 40 committed steps (of 60), WAL merged into the main file."""
    base = tmp_path_factory.mktemp("stopped")
    mp = pytest.MonkeyPatch()
    try:
        stopped_run(base / "run", scenario(agents=60, rounds=60), 40, mp)
    finally:
        mp.undo()
    return base / "run"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_damaged_or_foreign_store_is_refused_and_left_untouched(fault, stopped, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    db = run_dir / "run.sqlite"
    damage, words = FAULTS[fault]
    damage(db)
    before = digest(db)
    err = assert_one_line_error(run_cli("resume", str(run_dir), "--quiet"), *words)
    assert digest(db) == before, "a refused resume changed the store"
    assert not (run_dir / "run.sqlite-wal").exists() or fault.startswith("format")
    if fault.startswith("format"):
        assert rounds(run_dir) == 40  # still readable: nothing committed was lost
        assert "cannot continue this run" in err
        return
    for command in ("show", "analyze"):
        assert_one_line_error(run_cli(command, str(run_dir)), str(run_dir))
        assert digest(db) == before


def test_an_undamaged_copy_still_resumes_to_the_uninterrupted_run(stopped, tmp_path):
    """The fixture the faults start from is sound: the same store resumes identically."""
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    assert run_cli("resume", str(run_dir), "--quiet").returncode == 0
    start_run(resolve(scenario(agents=60, rounds=60), "s"), tmp_path / "straight", quiet=True)
    assert_same_store(run_dir, tmp_path / "straight")


def test_a_newer_format_is_refused_by_show_and_analyze_too(stopped, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped, run_dir)
    _format("99")(run_dir / "run.sqlite")
    for command in ("show", "analyze"):
        assert_one_line_error(run_cli(command, str(run_dir)), "format")


# -- the run lock ------------------------------------------------------------------------------
def test_the_lock_refuses_a_second_holder_and_frees_on_release(tmp_path):
    first = RunLock(tmp_path)
    with pytest.raises(
        StoreError, match=f"in use by another society process \\(pid {os.getpid()}\\)"
    ):
        RunLock(tmp_path)
    first.release()
    RunLock(tmp_path).release()


def wait_for(cond, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.slow
def test_two_resumes_at_once_the_second_refused_a_killed_ones_lock_is_stale(tmp_path, monkeypatch):
    data = scenario(agents=400, rounds=400, name="lock")
    run_dir = stopped_run(tmp_path / "run", data, 5, monkeypatch)
    first = subprocess.Popen(
        society_cmd("resume", str(run_dir), "--quiet"), cwd=ROOT, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: rounds(run_dir) >= 8 or first.poll() is not None, "no progress")
        assert first.poll() is None, "the first resume ended too soon for this test"
        before = rounds(run_dir)
        second = run_cli("resume", str(run_dir), "--quiet")
        assert_one_line_error(second, "in use by another society process", f"pid {first.pid}")
        assert rounds(run_dir) >= before  # the refused one touched nothing
        first.send_signal(signal.SIGKILL)  # dies holding the lock
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        assert first.stderr is not None
        first.stderr.close()
    assert (run_dir / "run.lock").exists()  # the file stays; the flock died with the process
    killed_at = rounds(run_dir)
    assert killed_at < 400
    done = run_cli("resume", str(run_dir), "--quiet")
    assert done.returncode == 0, done.stderr
    start_run(resolve(data, "s"), tmp_path / "straight", quiet=True)
    assert_same_store(run_dir, tmp_path / "straight")


# -- read-only directories and full disks --------------------------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A size-limited tmpfs at `path` (needs mount rights: root or CAP_SYS_ADMIN; else skip)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _read_only(run_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """`run_dir` copied somewhere this process cannot write: a read-only tmpfs as root
    (root ignores file modes), a directory without write permission otherwise."""
    if os.geteuid() != 0:
        target = tmp_path / "ro"
        shutil.copytree(run_dir, target)
        for p in (target, *target.iterdir()):
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield target
        finally:
            for p in (target, *target.iterdir()):
                p.chmod(0o755 if p.is_dir() else 0o644)
        return
    with tmpfs(tmp_path / "mnt", "16m") as mnt:
        shutil.copytree(run_dir, mnt / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt / "run"


def test_a_read_only_run_directory_is_refused_in_one_line(stopped, tmp_path):
    gen = _read_only(stopped, tmp_path)
    ro = next(gen)
    try:
        before = digest(ro / "run.sqlite")
        assert_one_line_error(run_cli("resume", str(ro), "--quiet"), str(ro), "cannot")
        assert digest(ro / "run.sqlite") == before
        assert rounds(ro) == 40
        # A new run cannot go there either.
        spec = tmp_path / "s.yaml"
        import yaml

        spec.write_text(yaml.safe_dump(scenario()))
        assert_one_line_error(
            run_cli("run", str(spec), "--out", str(ro / "new"), "--quiet"), "cannot create"
        )
        # Reading still works: show needs no write access.
        shown = run_cli("show", str(ro))
        assert shown.returncode == 0, shown.stderr
    finally:
        gen.close()


def _limit_file_size(limit: int):
    def preexec() -> None:  # runs in the child: files it writes cannot grow past `limit`
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _full_disk_then_resume(run_dir: Path, proc: subprocess.CompletedProcess, data: dict, tmp_path):
    """A run stopped by a full disk: one line, whole steps kept, resumes to the same store."""
    line = assert_one_line_error(proc, "cannot write the run store", "society resume")
    kept = rounds(run_dir)
    assert 0 < kept < data["game"]["rounds"], line
    assert f"{kept} step(s) committed" in line
    return kept


@pytest.mark.slow
def test_a_file_size_limit_stops_the_run_in_one_line_and_it_resumes(tmp_path):
    """RLIMIT_FSIZE (no root needed): SQLite's writes fail like on a full disk."""
    import yaml

    data = scenario(agents=200, rounds=60, name="full")
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        society_cmd("run", str(spec), "--out", str(run_dir), "--quiet"), cwd=ROOT,
        env=cli_env(), capture_output=True, text=True, timeout=300,
        preexec_fn=_limit_file_size(1_500_000),
    )  # fmt: skip
    kept = _full_disk_then_resume(run_dir, proc, data, tmp_path)
    done = run_cli("resume", str(run_dir), "--quiet")
    assert done.returncode == 0, done.stderr
    assert rounds(run_dir) == 60 > kept
    start_run(resolve(data, "s"), tmp_path / "straight", quiet=True)
    assert_same_store(run_dir, tmp_path / "straight")


@pytest.mark.slow
def test_a_full_file_system_stops_the_run_in_one_line_and_it_resumes(tmp_path):
    """A real full disk: a 2 MB tmpfs (skipped where it cannot be mounted)."""
    import yaml

    data = scenario(agents=200, rounds=60, name="full")
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(data))
    with tmpfs(tmp_path / "mnt", "2m") as mnt:
        run_dir = mnt / "run"
        proc = run_cli("run", str(spec), "--out", str(run_dir), "--quiet", "--allow-large")
        kept = _full_disk_then_resume(run_dir, proc, data, tmp_path)
        moved = tmp_path / "moved"
        shutil.copytree(run_dir, moved)  # the user frees space: here, moves the run
    assert rounds(moved) == kept
    done = run_cli("resume", str(moved), "--quiet")
    assert done.returncode == 0, done.stderr
    start_run(resolve(data, "s"), tmp_path / "straight", quiet=True)
    assert_same_store(moved, tmp_path / "straight")
