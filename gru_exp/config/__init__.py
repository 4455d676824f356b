"""Configuration: the register of knobs (:mod:`.knobs`), the sweep file schema (:mod:`.sweep`),
validation (:mod:`.validation`), composing with Hydra (:mod:`.compose`) and value helpers
(:mod:`.values`). Nothing here imports paddle or optuna."""
