"""The files of an exported folder that run without gru-exp: ``use_model.py`` (plain paddle and
numpy: the word tokenizer, the vocabulary, batching as ``gru-exp predict`` batches, the static
model via ``paddle.jit.load``) and the folder's README.md, which shows it and the Paddle Inference
calls. Text templates only; nothing here imports paddle."""

from __future__ import annotations

USE_MODEL = '''"""Classify texts with this exported gru-exp model, with plain paddle and numpy (no gru-exp):

    python use_model.py "A wonderful, moving film." "Dull and far too long."
    python use_model.py < texts.txt          # one text per line

prints one JSON line per text, as `gru-exp predict` does: {"label": ..., "probs": {class: p}}."""

import json
import string
import sys
from pathlib import Path

import numpy as np
import paddle

HERE = Path(__file__).resolve().parent
SETTINGS = json.loads((HERE / "preprocess.json").read_text())
WORDS = (HERE / "vocab.txt").read_bytes().splitlines()  # id -> word; <unk> = len(WORDS), <pad> = len(WORDS) + 1
INDEX = {word: i for i, word in enumerate(WORDS)}
PUNCTUATION = string.punctuation.encode("latin-1")


def tokenize(raw: bytes) -> list:
    """paddle's IMDB tokenizer: strip trailing newlines, drop ASCII punctuation, lowercase, split."""
    return raw.rstrip(b"\\n\\r").translate(None, PUNCTUATION).lower().split()


def encode(raw: bytes) -> list:
    """Token ids (unknown words: <unk>), cut to the first seq_len tokens as in training."""
    ids = [INDEX.get(token, SETTINGS["unk_id"]) for token in tokenize(raw)]
    return ids[: SETTINGS["seq_len"]] if SETTINGS["seq_len"] else ids


def probabilities(model, texts: list) -> np.ndarray:
    """float32 [len(texts), classes]. Batches as gru-exp predicts (and evaluates): batch_size texts,
    sorted by length and padded to the batch's longest when the model reads lengths, else in order
    and padded to seq_len. A text without tokens is one padding step."""
    docs = [encode(t) for t in texts]
    lengths = np.array([max(len(d), 1) for d in docs], dtype="int64")
    use_lengths, size, seq_len = SETTINGS["use_lengths"], SETTINGS["batch_size"], SETTINGS["seq_len"]
    order = np.argsort(lengths, kind="stable") if use_lengths else np.arange(len(docs))
    out = np.zeros((len(docs), len(SETTINGS["classes"])), dtype="float32")
    for start in range(0, len(docs), size):
        index = order[start : start + size]
        width = int(lengths[index].max()) if use_lengths or not seq_len else seq_len
        ids = np.full((len(index), width), SETTINGS["pad_id"], dtype="int64")
        for row, i in enumerate(index):
            ids[row, : len(docs[i])] = docs[i]
        inputs = [paddle.to_tensor(ids)] + ([paddle.to_tensor(lengths[index])] if use_lengths else [])
        out[index] = model(*inputs).numpy()  # the model's output: class probabilities (softmax)
    return out


if __name__ == "__main__":
    texts = [a.encode("utf-8") for a in sys.argv[1:]]
    if not texts:
        texts = sys.stdin.buffer.read().split(b"\\n")
        texts = texts[:-1] if texts and texts[-1] == b"" else texts
    model = paddle.jit.load(str(HERE / "model"))
    model.eval()
    classes = SETTINGS["classes"]
    for row in probabilities(model, texts):
        probs = {c: float(f"{p:.7g}") for c, p in zip(classes, row.tolist())}
        print(json.dumps({"label": classes[int(row.argmax())], "probs": probs}))
'''

README = """# {name}: an exported gru-exp model

A GRU text classifier trained by gru-exp ({model}), exported on {date} from
`{run_dir}` (epoch {epoch}, test accuracy {test_acc}). It runs with plain
paddle ({paddle}) and numpy; gru-exp is not needed.

| file | what |
|---|---|
| `model.json`, `model.pdiparams` | the static model (`paddle.jit.save`): inputs {inputs}; output `[batch, {n_classes}]` class probabilities (softmax) in the order of `classes` |
| `vocab.txt` | the vocabulary in id order (bytes, one word a line); `<unk>` = {unk_id}, `<pad>` = {pad_id} |
| `preprocess.json` | tokenizer (the run's data config), `seq_len`, `pad_id`, `unk_id`, `classes`, `use_lengths`, `batch_size` |
| `run_config.json`, `run_metrics.json` | the run's resolved config and its record (every epoch's metrics, test accuracy) |
| `use_model.py` | tokenize, encode, batch and run the model (below) |

## Run it

```bash
python use_model.py "A wonderful, moving film." "Dull and far too long."
python use_model.py < texts.txt       # one text per line; one JSON line out per text
```

The same answers as `gru-exp predict <run folder>` (within float tolerance). Texts are tokenized
as in training: trailing newlines stripped, ASCII punctuation dropped, lowercased, split on
whitespace; words outside `vocab.txt` become `<unk>`; only the first `seq_len` tokens are read
(`seq_len` null: all); a text without tokens is read as one `<pad>` step.

## In your own code

```python
import paddle
from use_model import probabilities        # or copy its tokenize/encode (20 lines)

model = paddle.jit.load("{folder}/model")  # model.json + model.pdiparams
model.eval()
print(probabilities(model, [b"A wonderful, moving film."]))  # [[p_{c0}, ...]] in the order of classes
```

Or with Paddle Inference (inputs by name: {input_names}; int64):

```python
import numpy as np
import paddle.inference as pi

config = pi.Config("{folder}/model.json", "{folder}/model.pdiparams")
config.disable_gpu(); config.set_cpu_math_library_num_threads(1); config.disable_glog_info()
predictor = pi.create_predictor(config)
ids = np.array([[12, 5, 873]], dtype="int64")        # token ids from use_model.encode(...)
predictor.get_input_handle("ids").copy_from_cpu(ids){lengths_line}
predictor.run()
probs = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
```
"""
