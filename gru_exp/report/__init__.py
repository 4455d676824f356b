"""Reports against the notebook's 84-85%: entries read from a study or run folders
(:mod:`.entries`), report.md tables (:mod:`.tables`) and PNG figures (:mod:`.figures`).
``python -m gru_exp.report`` is its command line."""
