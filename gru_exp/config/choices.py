"""The sets of string values a knob can take (Enums): Hydra refuses any other value at
composition. Declared here, used by the register (:mod:`gru_exp.config.knobs`), which re-exports
them."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A set of string values; compares equal to, prints and serialises as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Direction(Choice):
    forward = "forward"
    bidirectional = "bidirectional"


class Pooling(Choice):
    last = "last"
    mean = "mean"
    max = "max"
    attention = "attention"


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


class ValSplit(Choice):
    random = "random"
    id_blocks = "id_blocks"
    groups = "groups"  # whole groups of data.group_column (table sources)


class DataSource(Choice):
    """Where the texts come from; each value is the module ``gru_exp.data.<value>`` that reads it."""

    imdb = "imdb"  # the aclImdb_v1.tar.gz archive (data.path)
    folder = "folder"  # <data.path>/{train,test}/<label>/*.txt
    table = "table"  # data.train_file (and data.test_file): CSV, TSV or JSONL


class DataFormat(Choice):
    auto = "auto"  # from the file's suffix: .csv, .tsv/.tab, .jsonl/.ndjson
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


class Tokenizer(Choice):
    words = "words"  # paddle's IMDB tokenizer: ASCII punctuation dropped, split at whitespace
    chars = "chars"  # every non-space character a token (Chinese, Japanese)


class TestEpoch(Choice):
    best = "best"
    last = "last"


class LrSchedule(Choice):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"


class KeepCheckpoints(Choice):
    """What a finished run keeps of its checkpoints (trainer.keep_checkpoints)."""

    all = "all"  # best.pdparams and last.pdparams, both with the optimizer state (resume continues last)
    last = "last"  # last.pdparams only: the run can still be continued (needs trainer.test_epoch=last: it is the scored one)
    best = "best"  # only the weights scored on test: best.pdparams (or last.pdparams with trainer.test_epoch=last)
    none = "none"  # neither


class BagUpdate(Choice):
    """How the optimizer updates the n-gram bag's table (trainer.bag_update)."""

    dense = "dense"  # every row every step: paddle's Adam/AdamW over the whole table
    rows = "rows"  # only the rows the batch read (lazy Adam): imdb_bigram's optimizer step 11.7 -> 4.1 ms


class NgramJoin(Choice):
    """How the n-gram model beside the GRU (model.nb_features) joins it (model.nb_join)."""

    sum = "sum"  # the two models' logits summed, trained as one model on one loss
    separate = "separate"  # each trained on its own loss; at evaluation their logits averaged by model.nb_weight
    prefit = "prefit"  # the n-gram model fitted first (logistic regression, model.nb_c) and kept; then the GRU alone
