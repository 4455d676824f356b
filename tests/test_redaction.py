"""One redaction for a storage password wherever a URL or a driver's message holds it
(``user:secret@``, ``?password=``, percent-encoded, before an empty host, in brackets), and a
storage error that never shows it."""

from __future__ import annotations

import pytest


# -- secrets --------------------------------------------------------------------------------------------------

def test_redaction_masks_passwords_wherever_a_url_holds_them():
    from gru_exp.redact import redact

    cases = {
        "postgresql://u:s3cr%40t@h:5432/db": "postgresql://u:***@h:5432/db",
        "sqlite:////tmp/x.db?password=hunter2&mode=ro": "sqlite:////tmp/x.db?password=***&mode=ro",
        "postgresql://u@h/db?sslmode=require&password=a%26b": "postgresql://u@h/db?sslmode=require&password=***",
        "could not connect: password=abc host=x": "could not connect: password=*** host=x",
        "mysql://root:pa:ss@w@host/db": "mysql://root:***@host/db",
    }
    for text, masked in cases.items():
        assert redact(text) == masked
        assert "s3cr" not in redact(text) and "hunter2" not in redact(text)


@pytest.mark.parametrize("text", [
    "postgresql+psycopg2://user:s3cret@/db?host=/var/run/postgresql",  # Unix socket: empty host
    "`postgresql://u:s3cret@host`", "[postgresql://u:s3cret@host]", "{postgresql://u:s3cret@host}",
    "postgresql://u:s3cret@host!", "see postgresql://u:s3cret@h/db and mysql://a:s3cret@b/c",
])
def test_redaction_masks_a_password_before_an_empty_host_or_inside_brackets(text):
    """A host may be empty (libpq's Unix socket form) and a URL may sit in backticks, brackets or
    prose: the password is masked in every case (a review found these in clear)."""
    from gru_exp.redact import redact

    assert "s3cret" not in redact(text) and "***@" in redact(text)


# -- secrets (rows 146-149) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,masked", [
    ("postgresql://gru_ci:pa@ss:w0rd#x@127.0.0.1:5432/gru_ci", "postgresql://gru_ci:***@127.0.0.1:5432/gru_ci"),
    ("postgresql://gru_ci:Sekr1t Pw9@127.0.0.1:5432/gru_ci", "postgresql://gru_ci:***@127.0.0.1:5432/gru_ci"),
    ("postgresql://gru_ci@127.0.0.1:5432/gru_ci?password=Sekr1t Pw9",
     "postgresql://gru_ci@127.0.0.1:5432/gru_ci?password=***"),
    ("postgresql://u@h/db?sslmode=require&PassWord=Sekr1t Pw9&application_name=x",
     "postgresql://u@h/db?sslmode=require&PassWord=***&application_name=x"),
    ("storage='postgresql://gru_ci:Pw Secret9@127.0.0.1:5432/gru_ci' cannot be read: An exception",
     "storage='postgresql://gru_ci:***@127.0.0.1:5432/gru_ci' cannot be read: An exception"),
    ("Study 's' in postgresql://u:Sekr1t Pw9@[::1]:5432/db; run folders in /o/sweeps/s",
     "Study 's' in postgresql://u:***@[::1]:5432/db; run folders in /o/sweeps/s"),
    ("from postgresql://a:Sekr1t@h1/x to mysql://b:Pw9@h2/y", "from postgresql://a:***@h1/x to mysql://b:***@h2/y"),
    # a password holding "://" (adversarial pass 4: it was left in clear)
    ("storage=postgresql://gru:Tr0ub4dor://x@127.0.0.1:1/gru", "storage=postgresql://gru:***@127.0.0.1:1/gru"),
    ("connection failed: password='Sekr1t Pw9' host=h", "connection failed: password=*** host=h"),
    ("sqlite:////tmp/a@b/optuna.db?timeout=5", "sqlite:////tmp/a@b/optuna.db?timeout=5"),
])
def test_one_redaction_masks_a_password_wherever_it_sits(text, masked):
    from gru_exp.redact import redact

    assert redact(text) == masked


def test_a_storage_error_never_shows_the_password(sweep_env):
    from gru_exp.config.compose import compose_config
    from gru_exp.errors import ConfigError
    from gru_exp.sweep.storage import make_storage

    name = sweep_env(n_trials=1, epochs=1)
    sc = compose_config([f"sweep={name}", "storage='postgresql://gru_ci:pa@ss Sekr1t Pw9#x@127.0.0.1:1/gru_ci'"],
                        config_name="sweep")
    with pytest.raises(ConfigError) as info:
        make_storage(sc)
    text = str(info.value)
    assert "postgresql://gru_ci:***@127.0.0.1:1/gru_ci" in text
    assert not any(secret in text for secret in ("Sekr1t", "Pw9", "pa@ss", "#x"))


@pytest.mark.parametrize("how", ["argument after --cfg", "--cfg job --resolve from the environment"])
def test_what_hydra_prints_itself_never_shows_the_password(tmp_path, how):
    """``--cfg job`` printed the storage URL in clear, and so did argparse's "unrecognized arguments"
    for an override after ``--cfg job`` (adversarial pass 5)."""
    import os

    from conftest import cli

    url = "postgresql://gru_ci:Sekr1tPw9@127.0.0.1:1/gru_ci"
    env = {"GRU_EXP_HOME": str(tmp_path)}
    if how.startswith("argument"):
        proc = cli("gru_exp.sweep", "sweep=cpu_quick", "--cfg", "job", f"storage={url}", env=env)
    else:
        proc = cli("gru_exp.sweep", "--cfg", "job", "--resolve", env={**env, "GRU_EXP_STORAGE": url})
        assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "gru_ci:***@127.0.0.1" in text and "Sekr1t" not in text, text[-2000:]
    assert not os.listdir(tmp_path)


def test_the_run_folder_printed_on_stdout_is_never_masked(tiny_archive, tmp_path):
    """run=$(gru-exp train ...): a run folder named like 'token=abc' was printed as 'token=***' once
    everything Hydra prints was redacted (adversarial pass 6); only URLs' passwords are masked there."""
    from conftest import cli, tiny_overrides

    run = tmp_path / "token=abc" / "pass=1"
    proc = cli("gru_exp.train", *tiny_overrides(tiny_archive, tmp_path / "out", "trainer.epochs=1",
                                                 f"hydra.run.dir='{run}'"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(run)
