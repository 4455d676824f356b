"""``gru-exp export``: a finished run as a self-contained folder that plain paddle runs.

    gru-exp export outputs/runs/<date>/<run> --out my_model
    gru-exp export study_name=imdb --out my_model           # the study's best trial
    gru-exp export outputs/sweeps/front trial=7 --out my_model

The folder holds the static model (paddle.jit.save: model.json + model.pdiparams; inputs ids
[batch, time] int64 and, when the model reads lengths, lengths [batch] int64; output the class
probabilities), vocab.txt, preprocess.json (tokenizer settings, seq_len, pad/unk ids, classes),
the run's config and record (run_config.json, run_metrics.json: not named metrics.json, so
no tool takes the folder for a run folder), use_model.py (tokenize, batch and run it: paddle and numpy
only) and a README.md. --out must be a new or empty folder; the exported model is checked against
the run's own model on probe texts before the folder is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from gru_exp.config.paths import run_folder_around
from gru_exp.errors import GruExpError
from gru_exp.logs import setup_cli_logging
from gru_exp.files import crash_point, new_folder_beside, sigterm_raises
from gru_exp.use.runs import MODEL_HELP, UsableRun, doc_parser, find_run, refuse_inside_study, stopped
from gru_exp.use.standalone import README, USE_MODEL

log = logging.getLogger(__name__)
FORMAT = 1  # preprocess.json's layout
TOLERANCE = 1e-5  # largest difference allowed between the exported and the run's model on the probe texts


def check_out(out: Path) -> None:
    """GruExpError unless ``out`` is a new folder (in an existing one) or an empty one, outside any run folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GruExpError(f"--out {out} exists and is {'not a folder' if not out.is_dir() else 'not empty'}; export "
                          "writes only into a new or empty folder and never overwrites. Nothing was written.")
    if not out.parent.is_dir():
        raise GruExpError(f"--out {out}: its parent folder {out.parent} does not exist; make it first.")
    run = run_folder_around(out.resolve())
    if run is not None:
        raise GruExpError(f"--out {out} is inside the run folder {run}; give a folder of your own outside it. "
                          "Nothing was written.")
    refuse_inside_study(out, "folder")


def settings(run: UsableRun) -> dict:
    """preprocess.json: what turns a text into the model's inputs and its output into labels."""
    data = run.config.data
    return {"format": FORMAT, "tokenizer": {"name": "imdb_words", "data": _plain(data)}, "seq_len": data.seq_len,
            "pad_id": run.pad_id, "unk_id": run.unk_id, "vocab_size": run.vocab_size, "classes": run.classes,
            "use_lengths": run.config.model.use_lengths, "batch_size": run.config.trainer.eval_batch_size,
            "inputs": ["ids", "lengths"] if run.config.model.use_lengths else ["ids"], "output": "probabilities"}


def _plain(node: object) -> dict:
    import dataclasses

    return {k: getattr(v, "value", v) for k, v in dataclasses.asdict(node).items()}  # type: ignore[arg-type]


def save_static(run: UsableRun, folder: Path) -> None:
    """paddle.jit.save of the run's model (softmax on top) into ``folder``/model.*, checked against
    the dynamic model on probe batches; GruExpError when paddle's conversion changes the answers."""
    import numpy as np
    import paddle
    import paddle.nn.functional as F

    from gru_exp.use.infer import load_model

    class Probabilities(paddle.nn.Layer):
        def __init__(self, model: paddle.nn.Layer) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids, lengths=None):  # ids [B, T] int64, lengths [B] int64 -> [B, C] probabilities
            return F.softmax(self.model(ids, lengths), axis=-1)

    use_lengths = run.config.model.use_lengths
    layer = Probabilities(load_model(run))
    layer.eval()
    rng = np.random.default_rng(0)
    probes = []
    for batch, width in ((3, 7), (1, 1), (2, 2), (5, 23)):  # ragged batches, a one-token text, a one-pair text
        lengths = rng.integers(1, width + 1, size=batch).astype("int64")
        lengths[0] = width
        ids = rng.integers(0, run.vocab_size - 1, size=(batch, width)).astype("int64")
        ids[np.arange(width)[None, :] >= lengths[:, None]] = run.pad_id
        probes.append([paddle.to_tensor(ids)] + ([paddle.to_tensor(lengths)] if use_lengths else []))
    with paddle.no_grad():
        expected = [layer(*p).numpy() for p in probes]
    spec = [paddle.static.InputSpec([None, None], "int64", "ids")]
    if use_lengths:
        spec.append(paddle.static.InputSpec([None], "int64", "lengths"))
    try:
        paddle.jit.save(layer, str(folder / "model"), input_spec=spec)
        loaded = paddle.jit.load(str(folder / "model"))
        loaded.eval()
        worst = max(float(np.abs(loaded(*p).numpy() - e).max()) for p, e in zip(probes, expected))
    except Exception as exc:  # noqa: BLE001 - whatever paddle's dynamic-to-static conversion raises
        m = run.config.model
        raise GruExpError(f"paddle.jit could not export this model ({m.pooling} pooling, {m.direction}, "
                          f"bigram_buckets={m.bigram_buckets}, use_lengths={m.use_lengths}): {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}. Use gru-exp predict with the run folder instead.") from None
    if worst > TOLERANCE:
        raise GruExpError(f"paddle.jit's static model of this run answers differently from the run's own model (up to "
                          f"{worst:.2g} in a probability on probe texts; allowed {TOLERANCE:g}), so it is not "
                          "exported. Use gru-exp predict with the run folder instead.")
    log.info("Static model saved and checked on %d probe batches (largest difference %.2g)", len(probes), worst)


def write_folder(run: UsableRun, folder: Path, out: Path) -> None:
    """Everything but the model: vocabulary, settings, the run's config and record, script, README."""
    import paddle

    from gru_exp.train.model import describe
    from gru_exp.train.rundir import RECORD_FILE, VOCAB_FILE

    prep = settings(run)
    shutil.copyfile(run.run_dir / VOCAB_FILE, folder / "vocab.txt")
    shutil.copyfile(run.run_dir / RECORD_FILE, folder / "run_metrics.json")
    (folder / "preprocess.json").write_text(json.dumps(prep, indent=2) + "\n")
    (folder / "run_config.json").write_text(json.dumps(run.record.config, indent=2, default=str) + "\n")
    (folder / "use_model.py").write_text(USE_MODEL)
    m = run.config.model
    model = describe(m, run.vocab_size)
    lengths = '\npredictor.get_input_handle("lengths").copy_from_cpu(np.array([3], dtype="int64"))'
    (folder / "README.md").write_text(README.format(
        name=out.name, model=model, date=time.strftime("%Y-%m-%d"), run_dir=run.run_dir, epoch=run.epoch,
        test_acc=f"{100 * run.record.test['acc']:.2f}%", paddle=paddle.__version__,
        inputs="`ids` [batch, time] int64" + (" and `lengths` [batch] int64" if m.use_lengths else ""),
        n_classes=len(run.classes), unk_id=run.unk_id, pad_id=run.pad_id, folder=".", c0=run.classes[0],
        input_names=", ".join(f"`{n}`" for n in prep["inputs"]), lengths_line=lengths if m.use_lengths else ""))


def export(run: UsableRun, out: Path) -> None:
    """Build the folder beside ``out`` and move it into place; a failure leaves nothing behind."""
    from gru_exp.data.tokenize import tokenize, tokenizer

    if tokenizer(run.config.data) is not tokenize:
        raise GruExpError(f"{run.run_dir} tokenizes with {tokenizer(run.config.data).__name__}, but an exported "
                          "folder's use_model.py implements paddle's IMDB word tokenizer only; use gru-exp predict.")
    out = Path(os.path.abspath(out))  # "." or "dir/": the folder itself, whose parent holds the temporary one
    tmp: Optional[Path] = None
    try:
        tmp = new_folder_beside(out, "export")  # a name of its own: never a user's file or folder
        save_static(run, tmp)
        write_folder(run, tmp, out)
        crash_point("export:tmp")  # tests: a kill or SIGTERM with the folder complete beside --out
        if not out.exists():
            os.rename(tmp, out)
            tmp = None  # placed: its name is free again, and whatever appears there is not this command's
        else:
            check_out(out)  # still empty?
            for entry in sorted(tmp.iterdir()):
                if os.path.lexists(out / entry.name):  # appeared meanwhile: not this command's to replace
                    raise GruExpError(f"--out {out}: {entry.name} appeared there while exporting; export never "
                                      "overwrites it (the files moved before it stay there).")
                os.rename(entry, out / entry.name)
            tmp.rmdir()
            tmp = None
    except OSError as exc:
        raise GruExpError(f"--out {out} cannot be written: {exc.strerror or exc}. Nothing was written.") from None
    finally:
        if tmp is not None and tmp.is_dir():
            shutil.rmtree(tmp)  # this command's own temporary folder (Ctrl-C and SIGTERM included)


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.export") -> int:
    parser = doc_parser(__doc__, prog, "gru-exp export")
    parser.add_argument("args", nargs="+", metavar="MODEL",
                        help=MODEL_HELP)
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder to write")
    args = parser.parse_intermixed_args(argv)  # options anywhere among the positionals
    setup_cli_logging()
    try:
        check_out(args.out)
        run, rest = find_run(args.args)
        if rest:
            raise GruExpError(f"{' '.join(rest)}: export takes one model (a run folder or a study), nothing more.")
        from gru_exp.train import device

        device.limit_threads(1)
        device.import_paddle()
        with sigterm_raises():  # a kill by a scheduler or `kill` still removes the temporary folder
            export(run, args.out)
    except GruExpError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        return stopped(prog, stop)
    log.info("Exported %s (epoch %d) to %s", run.run_dir, run.epoch, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
