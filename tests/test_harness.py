"""The suite's own guards against hangs: a per-test time bound (pytest-timeout, pyproject.toml),
and children whose pipes are drained while a test waits, with a deadline on every wait."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, finish, start

BIG = 300_000  # bytes a child writes to each pipe: well past a pipe's 64 KiB buffer


def test_a_hung_test_fails_at_the_bound_and_the_run_goes_on(tmp_path):
    """The project's pytest settings, on a test that would sleep for 10 minutes and one after it."""
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(600)\n\n"
                                           "def test_after():\n    pass\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir",
                           str(tmp_path), "-o", "timeout=3", "-p", "no:cacheprovider", str(tmp_path / "test_hang.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "Timeout (>3.0s) from pytest-timeout" in proc.stdout and "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert time.monotonic() - started < 60


def test_the_bound_is_set_for_every_test(pytestconfig):
    assert float(pytestconfig.getini("timeout")) == 600


def test_a_child_writing_more_than_a_pipe_holds_is_drained_while_the_test_waits():
    script = (f"import sys, time\nsys.stdout.write('o' * {BIG}); sys.stdout.flush()\n"
              f"sys.stderr.write('e' * {BIG} + '\\nready\\n'); sys.stderr.flush()\ntime.sleep(0.5)\nprint('end')")
    proc = start([sys.executable, "-c", script])
    proc.err.wait_for("ready", timeout=60)  # reached only if stdout was drained meanwhile
    code, out, err = finish(proc, timeout=60)
    assert code == 0 and out == "o" * BIG + "end\n" and err == "e" * BIG + "\nready\n"


def test_waiting_for_a_line_has_a_deadline_and_kills_the_child():
    proc = start([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"])
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"(?s)2 s passed before a line with 'never'.*started"):
        proc.out.wait_for("never", timeout=2)
    assert proc.wait(30) < 0 and time.monotonic() - started < 30  # killed, not left running


def test_a_child_that_does_not_end_fails_the_test_at_the_deadline():
    proc = start([sys.executable, "-c", "import time; time.sleep(600)"])
    with pytest.raises(AssertionError, match="still running after 1 s"):
        finish(proc, timeout=1)
    assert proc.returncode is not None


def test_a_line_never_written_fails_as_soon_as_the_output_ends():
    proc = start([sys.executable, "-c", "print('bye')"])
    with pytest.raises(AssertionError, match="the output ended before a line with 'never'"):
        proc.out.wait_for("never", timeout=60)


def test_a_skipped_test_fails_the_run_under_the_no_skips_flag(tmp_path):
    """CI sets GRU_EXP_REQUIRE_NO_SKIPS=1: a test that skipped itself fails the run (#29)."""
    import shutil

    for name in ("conftest.py", "synthetic_imdb.py"):
        shutil.copy(REPO / "tests" / name, tmp_path / name)
    (tmp_path / "test_probe.py").write_text("import pytest\n\ndef test_ok():\n    pass\n\n"
                                            "def test_skipped():\n    pytest.skip('probe')\n")
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_probe.py"]
    env = {k: v for k, v in os.environ.items() if k != "GRU_EXP_REQUIRE_NO_SKIPS"}
    assert subprocess.run(base, cwd=tmp_path, env=env, capture_output=True, timeout=120).returncode == 0
    flagged = subprocess.run(base, cwd=tmp_path, env={**env, "GRU_EXP_REQUIRE_NO_SKIPS": "1"}, capture_output=True,
                             text=True, timeout=120)
    assert flagged.returncode == 1 and "1 test(s) skipped" in flagged.stdout, flagged.stdout[-2000:]
