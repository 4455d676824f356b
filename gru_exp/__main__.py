"""``python -m gru_exp <command>`` is the ``gru-exp`` console command (train, sweep, report, baseline)."""

import sys

from gru_exp.commands import main

if __name__ == "__main__":
    sys.exit(main())
