"""``python -m gru_exp.dashboard [--port 8040] [--host 127.0.0.1]``: VisualDL over every run.

Serves ``<outputs>/vdl``, the folder of readable links each run, sweep trial, sweep best-so-far
curve and the notebook baseline put there, from the outputs folder: VisualDL names runs in its
HParams views by their folder as walked, so the names read "vdl/imdb trial 3: hidden=64 ...",
not absolute paths, and its embedding projector needs a relative folder to load labels.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from gru_exp.config.compose import compose_config
from gru_exp.train.visualdl import VIEW_DIR


def visualdl_command(host: str, port: int) -> list[str]:
    exe = Path(sys.executable).with_name("visualdl")  # the console script of this environment
    return [str(exe), "--logdir", VIEW_DIR, "--host", host, "--port", str(port), "--disable-telemetry", "-L", "en"]


def start(output_dir: Path, host: str = "127.0.0.1", port: int = 8040, timeout_s: float = 60.0,
          log_file: Optional[Path] = None) -> subprocess.Popen:
    """Start VisualDL over ``output_dir``'s dashboard folder and wait until it answers."""
    log = open(log_file, "w") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(visualdl_command(host, port), cwd=output_dir, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"visualdl exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/alive", timeout=2) as answer:
                if answer.status == 204:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise TimeoutError(f"visualdl did not answer on {host}:{port} within {timeout_s:.0f} s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gru_exp.dashboard", description=__doc__.splitlines()[0],
                                     epilog="example: python -m gru_exp.dashboard --port 8040")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8040)
    args = parser.parse_args(argv)
    output_dir = Path(compose_config([]).paths.output_dir)
    if not (output_dir / VIEW_DIR).is_dir():
        print(f"gru_exp.dashboard: error: {output_dir / VIEW_DIR} does not exist yet: train or sweep first.",
              file=sys.stderr)
        return 2
    print(f"VisualDL over {output_dir / VIEW_DIR}: http://{args.host}:{args.port}", file=sys.stderr)
    return subprocess.call(visualdl_command(args.host, args.port), cwd=output_dir)


if __name__ == "__main__":
    sys.exit(main())
