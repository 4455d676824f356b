"""``python -m gru_exp`` is ``python -m gru_exp.train``."""

from gru_exp.train.__main__ import main

main()
