"""The register of knobs: every training knob declared once, with its type, default, allowed
values and role. Everything else is derived from these declarations:

- Hydra's schema (a typo'd key, a wrong type or a value outside an Enum fails at composition),
- range validation (:mod:`gru_exp.config.validation`: :func:`~gru_exp.config.validation.allowed`),
- the VisualDL hyperparameters and report grouping (``result`` knobs),
- the resume check (knobs without ``resume``),
- run folder names (Hydra's ``exclude_keys`` = knobs without ``in_name``).

A new knob is one ``knob(...)`` line here plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterator, Optional

from gru_exp.config.choices import (  # noqa: F401 (Choice: re-exported)
    BagUpdate,
    NgramJoin,
    Choice,
    DataFormat,
    DataSource,
    Device,
    Direction,
    KeepCheckpoints,
    LrSchedule,
    Pooling,
    TestEpoch,
    Tokenizer,
    ValSplit,
)


@dataclass(frozen=True)
class Knob:
    """What a knob is for. ``low``/``high`` bound numbers (``open_low``/``open_high`` exclude the
    bound); ``null`` says what None means when None is allowed. Roles: ``result`` = changes the
    trained model or its score (VisualDL hparams, report grouping); ``replicate`` = a result knob
    that varies between repeats of one configuration (the seed: not a grouping key); ``pins_study``
    = a replicate knob that, when set, still fixes what a study's values are measured on (the split
    seed: part of a study's identity); ``resume`` =
    may change when a run is resumed; ``in_name`` = part of a run folder's name; ``tag`` = the
    knob's name in VisualDL's HParams views."""

    help: str
    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False
    null: Optional[str] = None
    result: bool = True
    replicate: bool = False
    pins_study: bool = False
    resume: bool = False
    in_name: bool = True
    tag: str = ""  # result knobs: the short name VisualDL shows (no dots; its columns fit ~8 characters)
    sources: tuple[str, ...] = ()  # data knobs read by these data.source values only ("" = every source)


def knob(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field carrying its :class:`Knob` declaration."""
    info = Knob(help=help, **meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"knob": info})
    return field(default=default, metadata={"knob": info})


# A setting of where or how a run executes, not of what it trains: free on resume, no hparam.
HOW = dict(result=False, resume=True)
MAX_SEQ_LEN = 5000  # IMDB's longest review has 2,470 tokens (paddle's tokenizer); more only pads
MAX_SEED = 2**32 - 1  # numpy's seeds; paddle's, Python's and Optuna's take these too
BIGRAM_HASH = 1_000_003  # model.bigram_buckets: pair (a, b) -> row p = (a * BIGRAM_HASH + b) mod buckets (int64);
# model.ngram_order=3: triple (a, b, c) -> row (p * BIGRAM_HASH + c) mod buckets
NB_ALPHA = 1.0  # model.nb_features: the Naive Bayes counts' smoothing (Wang & Manning's alpha)
MAX_THREADS = 256  # more only oversubscribes (OpenMP aborts when it cannot start them all)


# Data sources, tokenizers, splits: gru_exp/data/ (docs/your-data.md). ``source`` names the module that reads it.
TABLE = dict(in_name=False, sources=("table",), **HOW)  # a file: its SHA-256 is the data's identity (record, resume, studies), not its path


@dataclass
class DataConfig:
    source: DataSource = knob(DataSource.imdb, "imdb (the archive) | folder (<data.path>/{train,test}/<label>/*.txt) | table (CSV/TSV/JSONL)", tag="source")
    path: Optional[str] = knob("${oc.env:GRU_EXP_IMDB,null}", "the IMDB archive aclImdb_v1.tar.gz, or the folder source's root",
                               null="$GRU_EXP_IMDB, else paddle's download", in_name=False, **HOW)
    train_file: Optional[str] = knob(None, "table source: the training texts (.csv, .tsv, .jsonl)", null="none", **TABLE)
    test_file: Optional[str] = knob(None, "table source: the test texts", null="data.test_share of train_file held out", **TABLE)
    format: DataFormat = knob(DataFormat.auto, "table files: csv | tsv | jsonl | auto (by suffix)", result=False, in_name=False,
                              sources=("table",))
    text_column: str = knob("text", "table files: the column (JSONL: key) holding each text", tag="text_col", sources=("table",))
    label_column: str = knob("label", "table files: the column holding each label (any strings or numbers)", tag="labl_col", sources=("table",))
    group_column: Optional[str] = knob(None, "table files: group ids kept whole by data.val_split=groups", null="none", tag="grp_col",
                                          sources=("table",))
    test_share: float = knob(0.2, "no test file/folder: share of train held out for test (stratified or whole groups, seed 0)",
                             low=0.0, high=1.0, open_low=True, open_high=True, tag="test_shr", sources=("folder", "table"))
    tokenizer: Tokenizer = knob(Tokenizer.words, "words (paddle's IMDB tokenizer) | chars (each non-space character)", tag="tokenize")
    lowercase: bool = knob(True, "lower-case before tokenizing (words: ASCII letters, as paddle's)", tag="lower")
    cache_dir: str = knob("${paths.cache_dir}", "token ids cached by the data's SHA-256 and the options", in_name=False, **HOW)
    seq_len: Optional[int] = knob(200, "reviews are cut to their first seq_len tokens, padded at the end",
                                  low=1, high=MAX_SEQ_LEN, null="whole reviews", tag="seq_len")
    cutoff: int = knob(150, "keep words seen more than cutoff times (paddle's Imdb)", low=0, tag="cutoff")
    val_size: int = knob(2500, "reviews held out of train (stratified); 0 = evaluate on test", low=0, tag="val_size")
    val_split: ValSplit = knob(ValSplit.random, "which: reviews at random, id_blocks (IMDB: blocks of 100 consecutive "
                               "review ids: one movie's reviews stay together, so the held-out movies are unseen in "
                               "training, as the test set's are) or groups (whole data.group_column groups)", tag="v_split")
    split_seed: Optional[int] = knob(None, "fixes the validation split and the subsets alone, so runs of several "
                                     "trainer.seed values train on the same texts (an ensemble's members)", low=0,
                                     high=MAX_SEED, null="trainer.seed", replicate=True, pins_study=True,
                                     tag="splitsd")
    train_limit: Optional[int] = knob(None, "stratified training subset", low=2, null="all", tag="n_train")
    test_limit: Optional[int] = knob(None, "stratified test subset", low=2, null="all 25,000", tag="n_test")
    bucket_size: int = knob(50, "batches per length-sorted chunk; 0 = plain shuffle", low=0, tag="bucket")


@dataclass
class ModelConfig:
    gru: bool = knob(True, "false: no GRU, the token embeddings' mean [+ bigram bag] -> Linear (a linear baseline)", tag="gru")
    embedding_size: int = knob(256, "embedding width", low=1, tag="embed")
    hidden_size: int = knob(256, "GRU hidden units per direction", low=1, tag="hidden")
    num_layers: int = knob(2, "stacked GRU layers", low=1, tag="layers")
    direction: Direction = knob(Direction.bidirectional, "GRU direction", tag="dir")
    dropout: float = knob(0.5, "after the embedding, between GRU layers, before the classifier",
                          low=0.0, high=1.0, open_high=True, tag="dropout")
    layer_dropout: Optional[float] = knob(None, "between GRU layers only (needs num_layers > 1)",
                                          low=0.0, high=1.0, open_high=True, null="model.dropout", tag="l_drop")
    use_lengths: bool = knob(True, "pass true lengths to the GRU (padding never read)", tag="lengths")
    pooling: Pooling = knob(Pooling.last, "how the GRU outputs become one vector (padding never pooled)", tag="pool")
    attention_size: Optional[int] = knob(None, "hidden units of attention pooling's score, v . tanh(W h_t + b); 0 = a "
                                         "linear score v . h_t + c (no hidden layer)", low=0,
                                         null="the GRU outputs' width", tag="att_size")
    word_dropout: float = knob(0.0, "probability of dropping a whole token's embedding (training only)",
                               low=0.0, high=1.0, open_high=True, tag="w_drop")
    bigram_buckets: int = knob(0, "hash rows of a bag of bigrams beside the GRU (fastText's bigram features); 0 = off",
                               low=0, tag="bigrams")
    bigram_size: int = knob(16, "width of a bigram row (with model.bigram_buckets > 0)", low=1, tag="bg_size")
    ngram_order: int = knob(2, "longest n-gram in the hashed bag: 2 = bigrams; 3 adds trigrams to the same table", low=2, high=3, tag="ngrams")
    gru_words: int = knob(0, "the GRU's embedding (and the bigram bag) keep the vocabulary's gru_words most frequent "
                          "words, the rest read as <unk>, while the n-gram model (model.nb_features) reads every word of "
                          "the vocabulary (data.cutoff); 0 = the whole vocabulary", low=0, tag="gru_wds")
    nb_features: int = knob(0, "a linear n-gram model beside the GRU (NBSVM's features): a text's distinct "
                            "uni..nb_order-grams of every word among the nb_features held by the most training texts, "
                            "each scaled by its Naive Bayes log-count ratio on the training split, one weight per "
                            "n-gram and class; 0 = off", low=0, tag="nb")
    nb_order: int = knob(3, "longest n-gram of the n-gram model (with model.nb_features > 0): 1 words, 2 + pairs, 3 + "
                         "triples", low=1, high=3, tag="nb_order")
    nb_join: NgramJoin = knob(NgramJoin.sum, "how the n-gram model joins the GRU: sum (logits summed, one loss) | "
                              "separate (each its own loss; logits averaged by model.nb_weight) | prefit (fitted "
                              "first as a logistic regression, model.nb_c, then fixed; logits averaged as separate)",
                              tag="nb_join")
    nb_weight: float = knob(0.5, "with model.nb_join=separate or prefit: the n-gram model's share of the averaged "
                            "logits", low=0.0, high=1.0, tag="nb_w")
    nb_c: float = knob(1.0, "with model.nb_join=prefit: the logistic regression's inverse L2 strength, mean loss + "
                       "|W|^2 / (nb_c N) (two classes: scikit-learn's C; more: its multinomial C is nb_c / 2)",
                       low=1e-6, high=1e6, tag="nb_c")  # outside: float32 |W|^2 / (nb_c N) overflows or does nothing
    fast_ops: bool = knob(False, "the same model through cheaper CPU ops: dropout masks drawn by numpy (word and "
                          "embedding dropout one multiply), attention and bag averages as batched matmuls; other random "
                          "draws and rounding than false", tag="fast_ops")


@dataclass
class TrainerConfig:
    epochs: int = knob(10, "training epochs", low=1, resume=True, tag="epochs")
    batch_size: int = knob(64, "training batch size", low=1, tag="batch")
    eval_batch_size: int = knob(256, "evaluation batch size", low=1, tag="ev_batch")
    lr: float = knob(1e-3, "learning rate (peak, with a schedule)", low=0.0, open_low=True, tag="lr")
    weight_decay: float = knob(0.0, "decoupled weight decay (AdamW); 0 = Adam", low=0.0, high=1.0, open_high=True, tag="wd")
    lr_schedule: LrSchedule = knob(LrSchedule.constant, "learning-rate decay to 0 over the run's steps", tag="sched")
    warmup: float = knob(0.0, "share of the run's steps with a linear warm-up", low=0.0, high=1.0, open_high=True, tag="warmup")
    seed: int = knob(42, "fixes init, order and (without data.split_seed) the split", low=0, high=MAX_SEED, replicate=True, tag="seed")
    device: Device = knob(Device.auto, "auto picks a GPU when paddle has one", **HOW)
    grad_clip: float = knob(0.0, "global-norm gradient clip; 0 = off", low=0.0, tag="clip")
    bag_update: BagUpdate = knob(BagUpdate.dense, "the n-gram bag's table: dense (every row every step, as paddle's "
                                 "Adam/AdamW) | rows (only the rows the batch read: lazy Adam; untouched rows keep "
                                 "their moments and get no weight decay)", tag="bag_upd")
    amp: bool = knob(False, "float16 autocast + loss scaling (GPU only)", tag="amp")
    drop_last: bool = knob(True, "drop the last incomplete training batch", tag="drop_lst")
    eval_drop_last: bool = knob(False, "drop the last incomplete eval batch (the notebook did)", tag="ev_drop")
    num_threads: int = knob(1, "CPU threads per training process", low=1, high=MAX_THREADS, **HOW)
    flush_denormals: bool = knob(True, "CPU: flush denormal floats to zero (GRU backward 10x faster)", **HOW)
    patience: int = knob(0, "stop after this many epochs without a better eval accuracy; 0 = off", low=0,
                         resume=True, tag="patience")
    test_epoch: TestEpoch = knob(TestEpoch.best, "whose weights are scored on test: the best eval epoch's, or the last "
                                 "epoch's (a refit on every training review: data.val_size=0 trainer.test_epoch=last)",
                                 resume=True, tag="test_ep")
    resume: Optional[str] = knob(None, "run folder whose last checkpoint to continue", null="a new run",
                                 in_name=False, **HOW)
    keep_checkpoints: KeepCheckpoints = knob(KeepCheckpoints.all, "kept once the run finished: all | last (resumable) | "
                                             "best (the scored weights) | none; sweeps: best", in_name=False, **HOW)
    progress_every_s: float = knob(15.0, "seconds between progress lines; 0 = per epoch only", low=0.0, **HOW)


@dataclass
class LoggerConfig:
    visualdl: bool = knob(True, "write VisualDL records", **HOW)
    batch_loss_every: int = knob(10, "steps between train/batch_loss points; 0 = off", low=0, **HOW)
    baseline: bool = knob(True, "write the notebook's reference run when missing", **HOW)
    roc_pr: bool = knob(True, "ROC and PR curves of the best epoch's test predictions", **HOW)
    text_samples: int = knob(40, "most confident test mistakes written as text samples; 0 = off", low=0, **HOW)
    embeddings: int = knob(10000, "most frequent words' embeddings for the projector; 0 = off", low=0, **HOW)
    histograms: bool = knob(True, "weight and gradient-norm histograms per epoch", **HOW)


PATH = dict(result=False, resume=True, in_name=False)


@dataclass
class PathsConfig:
    root_dir: str = knob("${gru_exp.root:}", "$GRU_EXP_HOME, else the checkout (or ./ when installed)", **PATH)
    output_dir: str = knob("${paths.root_dir}/outputs", "every output lives under it", **PATH)
    cache_dir: str = knob("${paths.output_dir}/cache", "preprocessed IMDB", **PATH)
    baseline_dir: str = knob("${paths.output_dir}/baseline/notebook", "the notebook's VisualDL run", **PATH)
    sweeps_dir: str = knob("${paths.output_dir}/sweeps", "study folders and the default SQLite storage", **PATH)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    name: str = knob("run", "experiment name, part of run folder names", in_name=False, **HOW)


def knobs(schema: type = RunConfig, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Knob]]:
    """Every knob of ``schema`` as (dotted key, field, declaration), in declaration order."""
    for f in dataclasses.fields(schema):
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
            yield from knobs(f.default_factory, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        elif "knob" in f.metadata:
            yield f"{prefix}{f.name}", f, f.metadata["knob"]


def keys(**role: bool) -> list[str]:
    """Dotted keys of the knobs whose roles match, e.g. ``keys(result=True)``."""
    return [k for k, _, info in knobs() if all(getattr(info, r) == v for r, v in role.items())]


def read_by(key: str, source: str) -> bool:
    """Whether data source ``source`` reads knob ``key`` (its declaration's ``sources``)."""
    info = {k: i for k, _, i in knobs()}.get(key)
    return info is None or not info.sources or str(source) in info.sources


def hparam_tags() -> dict[str, str]:
    """Dotted key -> VisualDL tag, for every knob that changes results."""
    return {k: info.tag or k.replace(".", "_") for k, _, info in knobs() if info.result}


def hparam_keys() -> list[str]:
    """What VisualDL's HParams view and reports compare: every knob that changes results."""
    return keys(result=True)


def grouping_keys() -> list[str]:
    """Knobs that make two runs different configurations (not repeats of one)."""
    return keys(result=True, replicate=False)


def study_keys() -> list[str]:
    """Knobs a study's values depend on: the grouping knobs, and the replicate knobs that pin it
    when set (the study's identity leaves those out while they are null)."""
    return grouping_keys() + keys(pins_study=True)


def resume_fixed_keys() -> list[str]:
    """Knobs a resumed run must share with the run it continues."""
    return keys(resume=False)


def name_excluded_keys() -> list[str]:
    """Hydra's ``exclude_keys``: overrides that never appear in a run folder's name."""
    return ["experiment", *keys(in_name=False)]


def defaults() -> dict[str, Any]:
    """Every knob's declared default (Enums as their values), by dotted key."""
    return {k: (f.default.value if isinstance(f.default, Enum) else f.default) for k, f, _ in knobs()}


def with_defaults(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat config from an older record, with the knobs added since at their defaults (the
    value that reproduced the old behaviour), so old runs still resume and group with new ones."""
    return {**defaults(), **flat}
