"""Optuna studies over training configs: the search space (:mod:`.space`), the storage
(:mod:`.storage`), one trial (:mod:`.objective`), the worker loop (:mod:`.worker`) and the study's
summary files (:mod:`.summary`). ``python -m gru_exp.sweep`` is its command line."""
