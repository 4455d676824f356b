"""The suite's teeth (issue #29): deliberate one-line bugs in important places, each of which some
test must catch. Not collected by pytest (the name does not start with ``test_``); run it:

    python tests/mutations.py                 # every mutation, then a Markdown table
    python tests/mutations.py --only resume-rng pruner-metric
    python tests/mutations.py --list          # the mutations, without running anything

For every mutation: a fresh copy of the checkout (its tracked and untracked, not ignored files) in a
temporary folder, ONE line of ``gru_exp/`` changed there (the checkout is never edited; the
original text must be found exactly once in its file, else the script refuses), then the named
tests run against the copy in a subprocess pytest (cwd and PYTHONPATH = the copy, checked to
import the copy's gru_exp, not the venv's). A mutation is *caught* when a named test fails.
Before that, a sanity pass runs the same tests on an unmutated copy: a test that does not pass
there cannot vouch for anything, and its rows are marked invalid.

Exit status 0 only when every mutation is caught by a test that passes on the unmutated code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parent.parent  # as tests/conftest.py finds it
DEFAULT_TIMEOUT_S = 900  # per pytest run (a hung test would fail there after pytest-timeout's 600 s)


@dataclasses.dataclass(frozen=True)
class Mutation:
    id: str
    file: str  # under gru_exp/
    original: str  # exact text found once in the file, on one line
    replacement: str  # what it becomes (one line)
    change: str  # the change in a few words
    promise: str  # the promise the bug breaks, one sentence
    tests: tuple[str, ...]  # node ids expected to catch it (quick ones)


MUTATIONS: list[Mutation] = [
    Mutation(
        "resume-rng", "gru_exp/train/checkpoints.py",
        'paddle.set_rng_state(ckpt["rng"])',
        'pass  # mutation: the RNG state is not restored',
        "resume does not restore paddle's RNG state",
        "A resumed run continues exactly as the uninterrupted run (same dropout masks, same metrics).",
        ("tests/test_train.py::test_resume_equals_uninterrupted",)),
    Mutation(
        "resume-optimizer", "gru_exp/train/checkpoints.py",
        'state.optimizer.set_state_dict(_local_optimizer_state(state.model, ckpt["optimizer"]))',
        'pass  # mutation: the optimizer state is not restored',
        "resume does not restore the optimizer state (Adam's moments start again from zero)",
        "A resumed run continues with the optimizer state it stopped with.",
        ("tests/test_train.py::test_resume_equals_uninterrupted",)),
    Mutation(
        "pruner-metric", "gru_exp/sweep/objective.py",
        'return reduced([getattr(h, self.metric) for h in state.history], self.reduce, self.direction)',
        'return reduced([h.eval_acc for h in state.history], self.reduce, self.direction)',
        "the pruner is fed the eval accuracy whatever the objective's metric",
        "The pruner is fed the study's own objective (its metric, reduce and direction) after every epoch.",
        ("tests/test_objectives.py::test_a_one_item_objectives_list_minimising_eval_loss_is_the_objective_everywhere",)),
    Mutation(
        "pruner-step", "gru_exp/sweep/objective.py",
        'step = self.repeat * self.epochs + e',
        'step = e',
        "each repeat reports at steps 1..epochs again (repeats overwrite each other)",
        "With repeats, every repeat reports at its own steps, so every trial reports the same schedule.",
        ("tests/test_sweep.py::test_the_pruner_is_not_asked_at_a_trials_last_step",)),
    Mutation(
        "prune-ignored", "gru_exp/sweep/objective.py",
        'if step < self.last_step and with_storage_retry',
        'if step > self.last_step and with_storage_retry',
        "comparison turned round: should_prune is never asked, no trial is ever pruned",
        "A trial the pruner condemns stops after that epoch (hopeless trials are pruned early).",
        ("tests/test_sweep.py::test_the_pruner_is_not_asked_at_a_trials_last_step",
         "tests/test_sweep.py::test_hopeless_trials_are_pruned_early")),
    Mutation(
        "redact-query", "gru_exp/redact.py",
        'if unquote(match.group("name")).lower() in SECRET_PARAMS:',
        'if match.group("name") in SECRET_PARAMS:',
        "secret query parameters matched case-sensitively and not percent-decoded (?PassWord= leaks)",
        "A password in a URL's query string is masked whatever its parameter's spelling.",
        ("tests/test_redaction.py::test_one_redaction_masks_a_password_wherever_it_sits",)),
    Mutation(
        "redact-userinfo", "gru_exp/redact.py",
        '(?P<password>(?:(?!://)[^\\n])*)',
        '(?P<password>[^@\\n]*)',
        "a URL's password ends at its first '@' instead of the last one before the host",
        "A URL's password is masked whole, also when it holds '@', ':', '#' or spaces.",
        ("tests/test_redaction.py::test_redaction_masks_passwords_wherever_a_url_holds_them",
         "tests/test_redaction.py::test_one_redaction_masks_a_password_wherever_it_sits")),
    Mutation(
        "study-json-password", "gru_exp/sweep/storage.py",
        'pointer = {"study_name": sc.study_name, "storage": redact(storage_url(sc)), "uid": uid}',
        'pointer = {"study_name": sc.study_name, "storage": storage_url(sc), "uid": uid}',
        "study.json records the storage URL unredacted",
        "A storage password is never written to any file of the study folder.",
        ("tests/test_postgres.py::test_a_password_in_the_query_string_never_reaches_a_log_or_file",)),
    Mutation(
        "run-lock-shared", "gru_exp/train/rundir.py",
        'fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)',
        'fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)',
        "the run folder's lock is taken shared, so a second run gets it too",
        "A run folder is held by one run at a time; another training is refused while it is held.",
        ("tests/test_run_folders.py::test_a_run_folder_that_another_process_holds_is_refused",)),
    Mutation(
        "resume-data-by-path", "gru_exp/train/preflight.py",
        'if record.archive_sha256 and found is not None and found.sha256() != record.archive_sha256:',
        'if record.archive_sha256 and found is not None and found.what != record.archive:',
        "a resume compares the data's path with the record's, not its SHA-256",
        "A resumed run continues on the very data it was trained on (the same content, wherever it lies).",
        ("tests/test_train.py::test_a_resume_knows_its_data_by_content_not_by_path",)),
    Mutation(
        "score-last-not-best", "gru_exp/train/run.py",
        'weights = state.run_dir / (BEST_CKPT if which == TestEpoch.best else LAST_CKPT)',
        'weights = state.run_dir / LAST_CKPT',
        "the test score is read from last.pdparams even with trainer.test_epoch=best",
        "The best validation epoch's weights, not the last epoch's, are the ones scored on test.",
        ("tests/test_train.py::test_early_stopping_after_improving_stops_patience_epochs_after_the_best",)),
    Mutation(
        "early-stop-off-by-one", "gru_exp/train/callbacks.py",
        'if stale >= self.patience:',
        'if stale > self.patience:',
        "early stopping waits one epoch more than trainer.patience",
        "trainer.patience=P stops a run P epochs after its best epoch.",
        ("tests/test_train.py::test_early_stopping_after_improving_stops_patience_epochs_after_the_best",)),
    Mutation(
        "eval-on-test", "gru_exp/train/loop.py",
        'eval_loss, eval_acc = evaluate(model, splits.eval, cfg, confusion=confusion)',
        'eval_loss, eval_acc = evaluate(model, splits.test, cfg, confusion=confusion)',
        "each epoch is evaluated on the test split, so the best epoch is chosen by a test score",
        "No epoch is ever chosen by a test score: the per-epoch evaluation is on the validation hold-out.",
        ("tests/test_protocol.py::test_the_best_epoch_is_chosen_on_the_validation_hold_out_never_on_test",)),
    Mutation(
        "imdb-cache-key", "gru_exp/data/imdb.py",
        'npz = Path(cache_dir) / f"imdb-{digest[:16]}-cutoff{cutoff}{key}-v{CACHE_FORMAT}.npz"',
        'npz = Path(cache_dir) / f"imdb-{digest[:16]}-cutoff{cutoff}-v{CACHE_FORMAT}.npz"',
        "the IMDB cache entry's name leaves out the tokenizer knobs",
        "Cached token ids are reused only for the same data and the same tokenizer options.",
        ("tests/test_data.py::test_the_imdb_cache_is_keyed_by_the_tokenizer_knobs",)),
    Mutation(
        "table-cache-key", "gru_exp/data/table.py",
        '"tokenizer": str(data.tokenizer), "lowercase": bool(data.lowercase),',
        '"tokenizer": str(data.tokenizer),',
        "a table's cache key leaves out data.lowercase",
        "Cached token ids are reused only for the same data and every option that changes them.",
        ("tests/test_data_sources.py::test_the_cache_is_keyed_by_content_and_every_option",)),
    Mutation(
        "group-split-leak", "gru_exp/data/splits.py",
        'chosen = np.flatnonzero(np.isin(groups, names[taken]))',
        'chosen = np.flatnonzero(np.isin(groups, names[taken]))[:n]',
        "the last group drawn is cut to the size asked, so it sits on both sides",
        "With whole-group splits no group has texts on both sides of validation (or of the held-out test part).",
        ("tests/test_data_sources.py::test_a_tsv_with_groups_keeps_each_group_on_one_side_of_validation",)),
    Mutation(
        "val-in-train", "gru_exp/data/splits.py",
        'val, train = train.subset(val_idx), train.subset(train_idx)',
        'val, train = train.subset(val_idx), train',
        "the validation texts stay in the training split",
        "Validation is held out of training: no text is in both.",
        ("tests/test_data.py::test_splits_hold_out_validation_from_train",)),
    Mutation(
        "split-seed-ignored", "gru_exp/data/splits.py",
        'rng = np.random.default_rng([seed, 0])',
        'rng = np.random.default_rng([0, 0])',
        "the validation split ignores trainer.seed",
        "trainer.seed fixes the split: the same seed draws the same validation texts, another seed others.",
        ("tests/test_data.py::test_each_seed_draws_its_own_validation_split_and_the_same_seed_the_same",)),
    Mutation(
        "class-order", "gru_exp/data/texts.py",
        'order = class_order([names[int(i)] for i in seen])',
        'order = [names[int(i)] for i in seen]',
        "class numbers in the order labels were first read, not the stable class order",
        "Class numbers follow a stable order of the labels (numeric, else by text), not the order of the file.",
        ("tests/test_data_sources.py::test_a_csv_of_three_string_labels_becomes_three_classes_with_a_seeded_stratified_test_part",)),
    Mutation(
        "predict-tokenizer", "gru_exp/use/texts.py",
        'tokenize, index = tokenizer(data), {w: i for i, w in enumerate(words)}',
        'tokenize, index = tokenizer(data.tokenizer), {w: i for i, w in enumerate(words)}',
        "predict passes the knob, not the data config: always the lower-casing word tokenizer",
        "predict tokenizes new texts exactly as the run's training did (its data.tokenizer and data.lowercase).",
        ("tests/test_use_model_inputs.py::test_predict_tokenizes_as_the_run_trained_cased_words",)),
    Mutation(
        "predict-seq-len", "gru_exp/use/texts.py",
        'docs = [encode(tokenize(t), index)[: data.seq_len] for t in texts]',
        'docs = [encode(tokenize(t), index) for t in texts]',
        "predict does not cut texts to data.seq_len",
        "predict cuts each text to data.seq_len as training did, and so reproduces the run's test score.",
        ("tests/test_use_model.py::test_predict_reproduces_the_recorded_test_accuracy_and_evaluation[last_2layers_cut]",)),
    Mutation(
        "export-label-order", "gru_exp/use/export.py",
        '"classes": run.classes,',
        '"classes": sorted(run.classes),',
        "the exported preprocess.json lists the classes sorted, not in class-number order",
        "An exported model labels a text as predict does (its classes in the run's class-number order).",
        ("tests/test_use_model.py::test_exported_model_gives_predicts_probabilities_with_plain_paddle[last_2layers_cut]",)),
    Mutation(
        "export-into-nonempty", "gru_exp/use/export.py",
        'if out.exists() and (not out.is_dir() or any(out.iterdir())):',
        'if out.exists() and not out.is_dir():',
        "export accepts a folder that already holds files",
        "export writes only into a new or empty folder; refused, it leaves the folder as it was.",
        ("tests/test_use_model_inputs.py::test_existing_out_and_unreadable_input_are_refused",)),
    Mutation(
        "keep-deletes-scored", "gru_exp/train/checkpoints.py",
        'other = LAST_CKPT if scored == BEST_CKPT else BEST_CKPT',
        'other = LAST_CKPT',
        "keep_checkpoints=best always removes last.pdparams, also when it is the scored file",
        "trainer.keep_checkpoints never removes the weights the run was scored with.",
        ("tests/test_keep_scored.py::test_best_keeps_the_scored_weights_also_when_the_last_epoch_is_scored",)),
    Mutation(
        "n-trials-overshoot", "gru_exp/sweep/worker.py",
        'if done + running >= sc.n_trials or failed >= max_failures:',
        'if done >= sc.n_trials or failed >= max_failures:',
        "trials running on other workers are not counted against n_trials",
        "n_trials is the study's total, exactly, however many workers run it.",
        ("tests/test_trial_budget.py::test_a_trial_running_on_another_worker_counts_toward_n_trials",)),
    Mutation(
        "study-folder-by-name", "gru_exp/sweep/storage.py",
        'if owner is not None and owner.get("uid") != uid:',
        'if owner is not None and owner.get("study_name") != sc.study_name:',
        "a study folder is claimed by study name instead of the study's id",
        "A second study of the same name (other storage, emptied database) never writes into the first's folder.",
        ("tests/test_bad_input_cli.py::test_a_second_study_of_the_same_name_never_writes_into_the_first",)),
    Mutation(
        "best-yaml-values", "gru_exp/sweep/best_yaml.py",
        'values.update(trial.params)',
        'pass  # mutation: the trial\'s sampled values are left out',
        "best.yaml is written without the trial's sampled values",
        "best.yaml composes the best trial's configuration exactly and runs as printed.",
        ("tests/test_best_yaml.py::test_best_yaml_composes_the_best_trials_config_exactly_and_runs_as_printed",)),
    Mutation(
        "report-test-as-val", "gru_exp/report/entries.py",
        'runs = [r for r in self.runs if key != "best_eval_acc" or r.eval_split == "val"]',
        'runs = list(self.runs)',
        "a refit run's per-epoch test accuracy counts as its best validation accuracy",
        "A report never shows or ranks by a test score as a validation score.",
        ("tests/test_protocol.py::test_a_report_never_shows_a_test_score_as_validation",)),
    Mutation(
        "rows-bias-correction", "gru_exp/train/optim.py",
        "lr_t = lr * correction / (1.0 - BETA1**t)",
        "lr_t = lr  # mutation: no bias correction",
        "the lazy bag update leaves out Adam's bias correction",
        "trainer.bag_update=rows applies paddle's Adam arithmetic to the rows a batch read.",
        ("tests/test_fast_ops.py::test_rows_update_is_adams_arithmetic_when_every_row_is_read",)),
    Mutation(
        "rows-moments-resume", "gru_exp/train/optim.py",
        "self.rows.set_state_dict(state)",
        "pass  # mutation: the bag rows' moments are not restored",
        "a resumed run's lazy bag update starts its moments again from zero",
        "A resumed run with trainer.bag_update=rows continues the rows' Adam moments.",
        ("tests/test_fast_ops.py::test_fast_knobs_resume_to_the_uninterrupted_result_and_train",)),
    Mutation(
        "fast-dropout-scale", "gru_exp/train/model.py",
        "np.multiply(rng.random(shape, dtype=np.float32) >= p, np.float32(1.0 / (1.0 - p)), out=mask)",
        "np.multiply(rng.random(shape, dtype=np.float32) >= p, np.float32(1.0), out=mask)  # mutation: no upscale",
        "model.fast_ops's dropout keeps elements unscaled (eval then sees larger activations than training)",
        "model.fast_ops's dropout masks have paddle's distribution: keep 1 - p, scaled by 1 / (1 - p).",
        ("tests/test_fast_ops.py::test_fast_dropout_masks_keep_the_distribution_and_follow_paddles_seed",)),
]


# -- the copy ------------------------------------------------------------------------------------------------

def checkout_files() -> list[str]:
    """The checkout's files as git sees them: tracked and untracked, but not ignored (no outputs/, caches)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    return sorted({name for name in out.decode().split("\0") if name and (REPO / name).is_file()})


COPY_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")  # what may name a copy's new folder (a mutation id, "unmutated")


def make_copy(files: Sequence[str], parent: Path, name: str) -> Path:
    """A new folder ``parent/name`` (never one that exists: it is removed whole afterwards) holding ``files``."""
    if not COPY_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a copy's folder (lower-case letters, digits and '-')")
    root = parent / name
    root.mkdir()
    for rel in files:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return root


def locate(m: Mutation, root: Path = REPO) -> int:
    """The 1-based line of ``m.original`` in ``root/m.file``; ValueError unless found exactly once."""
    if "\n" in m.original or "\n" in m.replacement:
        raise ValueError(f"{m.id}: a mutation changes one line; its texts hold a newline")
    if not m.file.startswith("gru_exp/"):
        raise ValueError(f"{m.id}: {m.file} is not under gru_exp/")
    text = (root / m.file).read_text()
    count = text.count(m.original)
    if count != 1:
        raise ValueError(f"{m.id}: the original text is found {count} times in {m.file} (must be exactly once): "
                         f"{m.original!r}")
    return text[: text.index(m.original)].count("\n") + 1


def apply(m: Mutation, root: Path) -> None:
    """The mutation applied in the copy at ``root`` (never in the checkout)."""
    assert root.resolve() != REPO.resolve() and REPO.resolve() not in root.resolve().parents, root
    locate(m, root)
    path = root / m.file
    path.write_text(path.read_text().replace(m.original, m.replacement, 1))


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}


def check_imports_copy(root: Path) -> None:
    """The copy's gru_exp is the one imported there (not the venv's editable install of another checkout)."""
    where = subprocess.run([sys.executable, "-c", "import gru_exp; print(gru_exp.__file__)"], cwd=root,
                           env=env_for(root), capture_output=True, text=True, timeout=120)
    found = Path(where.stdout.strip())
    if where.returncode != 0 or found.resolve() != (root / "gru_exp" / "__init__.py").resolve():
        raise RuntimeError(f"in the copy {root}, gru_exp is imported from {found or where.stderr.strip()}: "
                           "the copy would not be what the tests run")


# -- running the tests ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    passed: dict[str, bool]  # node id -> passed (failed, errored or skipped: False)
    first_failure: Optional[str]  # node id of the first test that failed or errored
    reason: str  # one line: why it failed (or what went wrong with the run)
    status: str  # "ran" or "TIMEOUT" or "ERROR"
    seconds: float


def _node_id(case: ET.Element) -> str:
    module = case.get("classname", "")
    name = case.get("name", "")
    parts = module.split(".")
    # classname is "tests.test_x" for a function, "tests.test_x.TestClass" for a method
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (REPO / path).is_file():
            return "::".join([path, *parts[cut:], name])
    return f"{module}::{name}"


def passes(node: str, passed: dict[str, bool]) -> bool:
    """Whether the named test ran and passed: every case it selects (all its parameters when it names none)."""
    cases = [ok for case, ok in passed.items() if case == node or case.startswith(node + "[")]
    return bool(cases) and all(cases)


def _reason(bad: ET.Element) -> str:
    """One line on why a test failed: pytest's rewritten ``assert ...`` line of the report when there is
    one (an assertion's own message may be a whole stderr), else the exception's message."""
    for line in (bad.text or "").splitlines():
        if line.startswith("E ") and line[1:].strip().startswith("assert "):
            return _one_line(line[1:])
    return _one_line(bad.get("message") or bad.text or "")


def _one_line(text: str, limit: int = 160) -> str:
    """The first line of ``text`` (with the next one when the first only introduces it, "AssertionError:")."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    line = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else (lines[0] if lines else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_tests(root: Path, nodes: Sequence[str], timeout_s: float, stop_first: bool, log: Path) -> Outcome:
    """pytest over ``nodes`` in the copy ``root``, in its own process group (killed whole on timeout)."""
    xml = root.parent / f"{root.name}-junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml", str(xml),
           *(["-x"] if stop_first else []), *nodes]
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env_for(root), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout_s)
            status = "ran"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "TIMEOUT"
    seconds = time.monotonic() - start
    passed: dict[str, bool] = {}
    first, reason = None, ""
    if xml.is_file():
        for case in ET.parse(xml).iter("testcase"):
            node = _node_id(case)
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            skipped = case.find("skipped")
            passed[node] = bad is None and skipped is None
            if bad is not None and first is None:
                first, reason = node, _reason(bad)
            elif skipped is not None and not reason:
                reason = "skipped: " + _one_line(skipped.get("message") or "")
    if status == "TIMEOUT":
        reason = f"no result within {timeout_s:.0f} s (killed)"
    elif not passed:
        status, reason = "ERROR", f"pytest exited {proc.returncode} without running a test (see {log})"
    return Outcome(passed, first, reason, status, seconds)


# -- the table -----------------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _short_test(node: str) -> str:
    """``test_x.py::test_y[param]``, a long parameter cut."""
    node = node.replace("tests/", "", 1)
    name, bracket, param = node.partition("[")
    return name + (bracket + (param if len(param) <= 40 else param[:38] + "…]") if bracket else "")


def table(rows: list[dict]) -> str:
    head = ["id", "file:line", "change", "promise broken", "caught by", "how it failed", "result", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(str(c)) for c in (
            f"`{r['id']}`", f"`{r['where']}`", r["change"], r["promise"],
            f"`{_short_test(r['by'])}`" if r["by"] else "—", r["reason"], r["result"], f"{r['seconds']:.0f}")) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and their lines, run nothing")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds per pytest run before it is killed (default {DEFAULT_TIMEOUT_S})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies and logs")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTATIONS]
    if len(set(ids)) != len(ids):
        parser.error("duplicate mutation ids")
    bad = [i for i in ids if i == "unmutated" or not COPY_NAME.fullmatch(i)]
    if bad:  # each names a new folder of its copy: "unmutated" is the sanity pass's
        parser.error(f"mutation ids that cannot name a copy's folder: {', '.join(bad)}")
    chosen = [m for m in MUTATIONS if not args.only or m.id in args.only]
    unknown = sorted(set(args.only or ()) - set(ids))
    if unknown:
        parser.error(f"unknown mutation id(s): {', '.join(unknown)}; known: {', '.join(ids)}")
    try:
        where = {m.id: f"{m.file}:{locate(m)}" for m in chosen}  # refused before anything runs
    except ValueError as exc:
        print(f"mutations.py: refused: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.id:24} {where[m.id]:40} {m.change}")
        return 0

    started = time.monotonic()
    files = checkout_files()
    work = Path(tempfile.mkdtemp(prefix="gru-exp-mutations-", dir="/tmp"))
    print(f"Copies and logs under {work}", file=sys.stderr)
    try:
        nodes = list(dict.fromkeys(n for m in chosen for n in m.tests))
        base = make_copy(files, work, "unmutated")
        check_imports_copy(base)
        print(f"Sanity pass: {len(nodes)} test(s) on the unmutated copy ...", file=sys.stderr, flush=True)
        sane = run_tests(base, nodes, args.timeout + 120 * len(nodes), False, work / "unmutated.log")
        failing = [n for n in nodes if not passes(n, sane.passed)]
        print(f"  {len(nodes) - len(failing)}/{len(nodes)} pass in {sane.seconds:.0f} s"
              + (f"; not passing: {', '.join(failing)}" if failing else ""), file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)

        rows = []
        for number, m in enumerate(chosen, 1):
            root = make_copy(files, work, m.id)
            apply(m, root)
            check_imports_copy(root)
            print(f"[{number}/{len(chosen)}] {m.id} ({where[m.id]}) ...", file=sys.stderr, flush=True)
            got = run_tests(root, m.tests, args.timeout, True, work / f"{m.id}.log")
            valid = all(passes(n, sane.passed) for n in m.tests)
            if not valid:
                result = "INVALID (a named test does not pass unmutated)"
            elif got.status != "ran":
                result = got.status
            elif got.first_failure:
                result = "caught"
            else:
                result = "MISSED"
            rows.append({"id": m.id, "where": where[m.id], "change": m.change, "promise": m.promise,
                         "by": got.first_failure if result == "caught" else "",
                         "reason": got.reason if got.first_failure or got.status != "ran" else "every named test passed",
                         "result": result, "seconds": got.seconds})
            print(f"    {result} in {got.seconds:.0f} s" + (f" by {got.first_failure}: {got.reason}" if got.first_failure
                                                          else ""), file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    caught = sum(r["result"] == "caught" for r in rows)
    total = time.monotonic() - started
    print(f"\n{caught} of {len(rows)} mutations caught; sanity pass {sane.seconds:.0f} s; "
          f"wall time {total / 60:.1f} min ({total:.0f} s).")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
