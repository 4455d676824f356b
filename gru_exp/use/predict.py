"""``gru-exp predict``: class probabilities for new texts from a finished run (or a study's best trial).

    gru-exp predict outputs/runs/<date>/<run> reviews.txt          # one text per line
    echo "A wonderful, moving film." | gru-exp predict <run folder> -
    gru-exp predict study_name=imdb reviews.jsonl --text-column review --format csv --out preds.csv
    gru-exp predict outputs/sweeps/front trial=7 reviews.csv        # a study folder, a trial of its front

Uses what the run recorded, nothing re-derived from the data: its config (model and data knobs),
vocab.txt, class names and the checkpoint it was scored on test with (best.pdparams, or last.pdparams
for trainer.test_epoch=last). Texts are tokenized and cut to data.seq_len as in training (unknown
words are <unk>; an empty text is one padding step) and batched like evaluation. Writes one line per
input text, in input order: JSONL {"label": <class>, "probs": {<class>: p, ...}} (default) or CSV
(label,prob_<class>,...), to stdout or --out FILE (a new file: never overwritten). Progress on stderr.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from gru_exp.config.knobs import MAX_THREADS
from gru_exp.errors import GruExpError
from gru_exp.files import crash_point, current_umask, sigterm_raises
from gru_exp.logs import setup_cli_logging
from gru_exp.use.runs import MODEL_HELP, doc_parser, find_run, refuse_inside_study, stopped
from gru_exp.use.texts import FORMATS, encode_texts, input_format, parse_texts, read_bytes, text_column

log = logging.getLogger(__name__)


def output_lines(probs: np.ndarray, classes: Sequence[str], fmt: str) -> list[str]:
    """One line per row of ``probs``: JSONL {"label", "probs"} or CSV rows after a header line.
    Probabilities with 7 significant digits (float32's precision)."""
    labels = [classes[i] for i in probs.argmax(axis=1)] if len(probs) else []
    rounded = [[float(f"{p:.7g}") for p in row] for row in probs.tolist()]
    if fmt == "jsonl":
        return [json.dumps({"label": label, "probs": dict(zip(classes, row))}) for label, row in zip(labels, rounded)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", *(f"prob_{c}" for c in classes)])
    writer.writerows([label, *row] for label, row in zip(labels, rounded))
    return buffer.getvalue().splitlines()


def check_new_file(out: Path) -> None:
    """GruExpError unless ``out`` is a file that does not exist yet in an existing folder."""
    if out.is_dir():
        raise GruExpError(f"--out {out} is a folder; --out names the file to write, e.g. --out "
                          f"{out / 'predictions.jsonl'} (a new file: predict never overwrites one). Nothing was written.")
    if out.exists() or out.is_symlink():
        raise GruExpError(f"--out {out} exists; predict never overwrites a file. Give a new file name (or leave "
                          "--out out to write to stdout). Nothing was written.")
    if not out.parent.is_dir():
        raise GruExpError(f"--out {out}: its folder {out.parent} does not exist; give a file in an existing folder.")
    refuse_inside_study(out, "file")


def write_new_file(out: Path, lines: Sequence[str]) -> None:
    """Write ``lines`` into ``out`` only if it still does not exist (a temporary file hard-linked
    to its name: never a half-written or overwritten file)."""
    tmp: Optional[Path] = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)  # a name of its own
        tmp = Path(name)
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(line + "\n" for line in lines))
        os.chmod(tmp, 0o666 & ~current_umask())  # a file like any other (mkstemp makes it private)
        crash_point("predict:tmp")  # tests: a kill or SIGTERM with the file complete beside --out
        os.link(tmp, out)
    except FileExistsError:
        raise GruExpError(f"--out {out} appeared while predicting; predict never overwrites a file. Nothing was "
                          "written.") from None
    except OSError as exc:
        raise GruExpError(f"--out {out} cannot be written: {exc.strerror or exc}. Nothing was written.") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m gru_exp.predict") -> int:
    parser = doc_parser(__doc__, prog, "gru-exp predict")
    parser.add_argument("args", nargs="*", metavar="MODEL [INPUT]",
                        help=f"{MODEL_HELP}; then the input file, or - (or nothing) for stdin")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)")
    parser.add_argument("--out", type=Path, help="a new file to write (default, or -: stdout)")
    parser.add_argument("--input-format", choices=FORMATS,
                        help="lines, jsonl, csv or tsv (default: by suffix as training: .jsonl/.json, .csv, .tsv; "
                             "else lines)")
    parser.add_argument("--text-column", help="the text's key (JSONL) or column (CSV, TSV); default: the run's "
                                              "data.text_column when it trained on a table, else text")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for paddle (default 1)")
    args = parser.parse_intermixed_args(argv)  # options anywhere: MODEL --out f INPUT too
    setup_cli_logging()
    if args.out is not None and str(args.out) == "-":  # as for the input: - is the standard stream (stdout here)
        args.out = None
    try:
        if args.out is not None:
            check_new_file(args.out)
        if not 1 <= args.threads <= MAX_THREADS:
            raise GruExpError(f"--threads {args.threads} must be in [1, {MAX_THREADS}] (more only oversubscribes the "
                              "cores; OpenMP aborts when it cannot start them all).")
        run, rest = find_run(args.args)
        if len(rest) > 1:
            raise GruExpError(f"{' '.join(rest)}: give one input file (or - for stdin), not {len(rest)}.")
        source = rest[0] if rest else "-"
        fmt = input_format(source, args.input_format)
        texts = parse_texts(read_bytes(source), fmt, text_column(args.text_column, run.config.data), source)
        split = encode_texts(texts, run.config.data, run.words, run.pad_id)
        from gru_exp.train import device

        device.limit_threads(args.threads)
        device.import_paddle()
        from gru_exp.use.infer import load_model, probabilities

        model = load_model(run)
        start = time.perf_counter()
        probs = probabilities(model, split, run.config.model.use_lengths, run.config.trainer.eval_batch_size,
                              progress="predict" if len(texts) > 1 else None)
        log.info("Predicted %d text(s) with %s (epoch %d) in %.2f s", len(texts), run.run_dir, run.epoch,
                 time.perf_counter() - start)
        lines = output_lines(probs, run.classes, args.format)
        if args.out is not None:
            with sigterm_raises():  # a kill by a scheduler or `kill` still removes the temporary file
                write_new_file(args.out, lines)
            log.info("Wrote %s", args.out)
        else:
            try:
                sys.stdout.write("".join(line + "\n" for line in lines))
                sys.stdout.flush()
            except BrokenPipeError:
                from gru_exp.commands import _closed_stdout

                _closed_stdout()
    except GruExpError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        return stopped(prog, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
