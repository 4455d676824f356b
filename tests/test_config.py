"""Every config composes; bad values and typos are rejected with a message naming them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from gru_exp.config.compose import compose_config
from gru_exp.config.sources import CONF_DIR, SWEEPS_DIR
from gru_exp.config.validation import validate
from gru_exp.errors import ConfigError

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def test_defaults_are_the_notebook_model():
    cfg = compose_config([])
    validate(cfg)
    assert (cfg.model.embedding_size, cfg.model.hidden_size, cfg.model.num_layers) == (256, 256, 2)
    assert (cfg.model.direction, cfg.model.dropout) == ("bidirectional", 0.5)
    assert (cfg.data.seq_len, cfg.data.cutoff, cfg.trainer.batch_size, cfg.trainer.lr, cfg.trainer.epochs) == (
        200, 150, 64, 0.001, 10)


def test_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    first = compose_config([]).paths.output_dir
    monkeypatch.chdir(tmp_path)
    assert compose_config([]).paths.output_dir == first
    assert Path(first).is_absolute()


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name):
    cfg = compose_config([f"experiment={name}"])
    validate(cfg)
    assert cfg.name == name


def test_the_fast_experiment_is_imdb_bigram_with_the_three_fast_knobs_and_nothing_else():
    """docs/performance.md's 6-seed figures were run as these overrides on imdb_bigram."""
    fast = compose_config(["experiment=imdb_bigram_fast"])
    same = compose_config(["experiment=imdb_bigram", "model.fast_ops=true", "trainer.bag_update=rows",
                           "model.attention_size=0", "name=imdb_bigram_fast"])
    assert OmegaConf.to_container(fast) == OmegaConf.to_container(same)
    assert OmegaConf.to_container(fast) != OmegaConf.to_container(compose_config(["experiment=imdb_bigram",
                                                                                  "name=imdb_bigram_fast"]))


def test_the_ngrams_experiment_is_imdb_bigram_with_the_ngram_model_and_the_gru_on_imdb_bigrams_words():
    """experiment=imdb_ngrams is what docs/results.md section 16 measured: imdb_bigram plus these overrides only."""
    ngrams = compose_config(["experiment=imdb_ngrams"])
    same = compose_config(["experiment=imdb_bigram", "data.cutoff=0", "model.gru_words=5146",
                           "model.nb_features=1048576", "model.nb_join=prefit", "model.nb_weight=0.4",
                           "name=imdb_ngrams"])
    assert OmegaConf.to_container(ngrams) == OmegaConf.to_container(same)
    assert ngrams.model.nb_order == 3 and ngrams.model.nb_c == 1.0  # the defaults it was measured with


def test_seed_baseline_is_the_notebook_protocol():
    cfg = compose_config(["experiment=seed_baseline"])
    assert cfg.data.val_size == 0 and cfg.trainer.drop_last and cfg.trainer.eval_drop_last
    assert not cfg.model.use_lengths and cfg.data.bucket_size == 0
    assert (cfg.model.embedding_size, cfg.model.hidden_size, cfg.trainer.eval_batch_size) == (256, 256, 64)


BAD_VALUES = [
    ("model.hidden_size=0", "model.hidden_size=0", "positive integer"),
    ("model.embedding_size=-3", "model.embedding_size=-3", "positive integer"),
    ("model.num_layers=0", "model.num_layers=0", "positive integer"),
    ("trainer.epochs=0", "trainer.epochs=0", "positive integer"),
    ("trainer.batch_size=-1", "trainer.batch_size=-1", "positive integer"),
    ("data.seq_len=0", "data.seq_len=0", "[1, 5000]"),
    ("data.seq_len=100000", "data.seq_len=100000", "[1, 5000]"),
    ("model.pooling=avg", "model.pooling='avg'", "last, mean, max, attention"),
    ("model.word_dropout=1.0", "model.word_dropout=1.0", "[0, 1)"),
    ("model.bigram_buckets=-1", "model.bigram_buckets=-1", ">= 0"),
    ("model.bigram_size=0", "model.bigram_size=0", "positive integer"),
    ("trainer.weight_decay=-0.1", "trainer.weight_decay=-0.1", "[0, 1)"),
    ("trainer.lr_schedule=step", "trainer.lr_schedule='step'", "constant, cosine, linear"),
    ("trainer.warmup=1.5", "trainer.warmup=1.5", "[0, 1)"),
    ("model.dropout=1.0", "model.dropout=1.0", "[0, 1)"),
    ("model.dropout=-0.1", "model.dropout=-0.1", "[0, 1)"),
    ("model.direction=sideways", "model.direction='sideways'", "forward, bidirectional"),
    ("trainer.device=tpu", "trainer.device='tpu'", "auto, cpu, gpu"),
    ("trainer.lr=0", "trainer.lr=0", "> 0"),
    ("trainer.patience=-1", "trainer.patience=-1", ">= 0"),
    ("data.val_size=-5", "data.val_size=-5", ">= 0"),
    ("data.train_limit=1", "data.train_limit=1", ">= 2 or null"),
    ("trainer.grad_clip=nan", "trainer.grad_clip=nan", ">= 0"),
    ("trainer.lr=inf", "trainer.lr=inf", "> 0"),
    ("model.use_lengths=false", "data.bucket_size=50", "needs model.use_lengths=true"),
    ("trainer.amp=true", "trainer.amp=true", "GPU"),
    ("data.val_size=0", "trainer.test_epoch=best would score the epoch with the best test accuracy", "test_epoch=last"),
]


@pytest.mark.parametrize("overrides,named", [
    (["data.val_size=0", "trainer.test_epoch=last", "trainer.patience=1"], "trainer.patience=1 would stop on the test"),
    (["data.val_size=0", "trainer.patience=2"], "trainer.patience=2 would stop on the test accuracy and "
                                               "trainer.test_epoch=best would score"),
    (["experiment=seed_baseline", "trainer.test_epoch=best"], "trainer.test_epoch=best would score"),
])
def test_no_epoch_is_chosen_by_a_test_score(overrides, named):
    """Without a validation split the evaluation set is the test set: early stopping or a best
    epoch would let the test set choose the result (a refit with patience=1 used to stop on test)."""
    from gru_exp.config.compose import check_overrides

    with pytest.raises(ConfigError, match=re.escape(named)):
        check_overrides(overrides)
    check_overrides(["data.val_size=0", "trainer.test_epoch=last"])
    check_overrides(["experiment=seed_baseline"])


@pytest.mark.parametrize("override,named,allowed", BAD_VALUES)
def test_bad_values_are_rejected_with_key_value_and_allowed(override, named, allowed):
    from gru_exp.config.compose import check_overrides

    extra = ["trainer.device=cpu"] if override == "trainer.amp=true" else []
    with pytest.raises(ConfigError) as info:  # a bad Enum choice fails composition, a bad range validation
        check_overrides([override, *extra])
    assert named in str(info.value) and allowed in str(info.value)


@pytest.mark.parametrize("overrides,named", [
    (["model.use_lengths=false", "data.bucket_size=0", "model.bigram_buckets=64"],
     "model.bigram_buckets=64 needs model.use_lengths=true"),
    (["model.bigram_buckets=2000006"], "model.bigram_buckets=2000006 is a multiple of the bigram hash's multiplier"),
    (["model.bigram_size=32"], "model.bigram_size=32 has no effect with model.bigram_buckets=0"),
    (["model.ngram_order=3"], "model.ngram_order=3 has no effect with model.bigram_buckets=0"),
])
def test_bigram_bag_rules(overrides, named):
    """The bag needs true lengths (else it averages padding pairs), a bucket count the hash spreads
    over, and its width means nothing without buckets; each case is fine once the rule is met."""
    from gru_exp.config.compose import check_overrides

    with pytest.raises(ConfigError, match=re.escape(named)):
        check_overrides(overrides)
    check_overrides(["model.bigram_buckets=64", "model.bigram_size=32", "model.use_lengths=true"])
    check_overrides(["model.bigram_buckets=2000007", "model.ngram_order=3"])


def test_all_problems_are_reported_together():
    cfg = compose_config(["model.hidden_size=0", "model.dropout=2"])
    with pytest.raises(ConfigError, match=r"model.hidden_size=0.*model.dropout=2"):
        validate(cfg)


@pytest.mark.parametrize("override", ["model.hiden_size=128", "trainer.epochs=ten", "data.seq_len=1.5"])
def test_typos_and_wrong_types_fail_at_composition(override):
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        compose_config([override])
    assert override.split("=")[0].split(".")[-1] in str(info.value) + str(info.value.__cause__)


SWEEPS = sorted(p.stem for p in (Path(CONF_DIR).parent / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_is_valid_and_its_combinations_compose(name):
    import itertools

    import optuna

    from gru_exp.sweep.space import check_sweep, suggest_overrides, trial_overrides

    sc = compose_config([f"sweep={name}"], config_name="sweep")
    check_sweep(sc, compose_config)
    # Every combination of the categorical choices (others at a sampled value) must validate:
    # a shipped space must not contain trials that are bound to fail.
    categorical = {k: list(v.choices) for k, v in sc.params.items() if v.type == "categorical"}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    combos = list(itertools.product(*categorical.values()))
    for combo in combos:
        study.enqueue_trial(dict(zip(categorical, combo)))
    for _ in combos:
        trial = study.ask()
        validate(compose_config(trial_overrides(sc.base, suggest_overrides(trial, sc.params))))
        study.tell(trial, 0.0)


@pytest.mark.parametrize("name", sorted(p.stem for p in Path(SWEEPS_DIR).glob("*.yaml")))
def test_every_shipped_search_space_passes_the_sweep_check(name):
    """Each sweeps/*.yaml composes and passes check_sweep (every range end composed and validated
    like a trial), so a shipped search space never fails at its first trial."""
    from gru_exp.sweep.space import check_sweep

    check_sweep(compose_config([f"sweep={name}"], config_name="sweep"), compose_config)
