"""Where configs come from: the shipped config tree and search spaces (a source checkout's top-level
folders, or package data in a wheel), the user's own config folders ($GRU_EXP_CONFIG_PATH,
``--config-dir``, the older $GRU_EXP_SWEEPS_PATH) and the rule that no file shadows another, where
outputs live ($GRU_EXP_HOME), and a frozen copy of the config folders for long-running workers."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from gru_exp.config.values import override
from gru_exp.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent.parent  # gru_exp/
_CHECKOUT = _PACKAGE.parent
# The shipped config tree and search spaces: package data in a wheel (gru_exp/conf, gru_exp/sweeps,
# mapped there at build time by pyproject.toml), the top-level folders in a source checkout.
_INSTALLED = (_PACKAGE / "conf").is_dir()
CONF_DIR = str(_PACKAGE / "conf" if _INSTALLED else _CHECKOUT / "conf")
SWEEPS_DIR = str(_PACKAGE / "sweeps" if _INSTALLED else _CHECKOUT / "sweeps")
CONFIG_PATH_ENV = "GRU_EXP_CONFIG_PATH"  # the user's config folders, os.pathsep-separated


def project_root() -> str:
    """Where outputs live: $GRU_EXP_HOME; else the source checkout when running from one; else
    the folder the command runs in (an installed gru-exp writes ./outputs, as Hydra apps do)."""
    env = os.environ.get("GRU_EXP_HOME")
    if env:
        return str(Path(env).expanduser().absolute())
    if not _INSTALLED and (_CHECKOUT / "pyproject.toml").is_file():
        return str(_CHECKOUT)
    return str(Path.cwd())


def user_config_dirs(extra: Sequence[str] = ()) -> list[Path]:
    """The user's own config folders from $GRU_EXP_CONFIG_PATH (then ``extra``, e.g. train's
    ``--config-dir``), each laid out like the shipped conf/ (``experiment/*.yaml`` ...) plus an
    optional ``sweeps/`` of search spaces. They extend the shipped configs through Hydra's search
    path. Which file runs is never ambiguous: a file that would shadow a shipped one, or one of the
    same name in another of the user's folders, is refused (Hydra would silently take the first)."""
    folders = [Path(p).expanduser().absolute() for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if p]
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"{CONFIG_PATH_ENV} names {str(folder)!r}, which is not a folder. Set it to folders "
                              f"(separated by {os.pathsep!r}) laid out like gru-exp's conf/: experiment/<name>.yaml "
                              "for your experiments, sweeps/<name>.yaml for your search spaces.")
    folders += [Path(p).expanduser().absolute() for p in extra]
    folders = _once(folders)
    seen: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/**/*.yaml")):  # experiment/x.yaml, experiment/sub/x.yaml, sweeps/...
            name = path.relative_to(folder).as_posix()
            shipped = (Path(SWEEPS_DIR).parent if name.startswith("sweeps/") else Path(CONF_DIR)) / name
            if shipped.is_file():
                raise ConfigError(f"{path} has the name of a shipped config ({name}); rename yours (e.g. "
                                  f"my_{path.name}) and select it by that name.")
            if name in seen:
                raise ConfigError(f"{path} and {seen[name]} are both {name} (in {CONFIG_PATH_ENV} or --config-dir); "
                                  "only one would run and nothing would say which: rename one of them.")
            seen[name] = path
    return folders


def _once(folders: Sequence[Path]) -> list[Path]:
    """Each folder once, however it is spelled (``..``, a symlink to it), in the order given."""
    unique: dict[Path, Path] = {}
    for folder in folders:
        unique.setdefault(folder.resolve(), folder)
    return list(unique.values())


def searchpath_override(folders: Sequence[Path]) -> list[str]:
    """Hydra's ``hydra.searchpath=[...]`` override for the user's config folders (none: [])."""
    if not folders:
        return []
    entries = [override("x", f"file://{folder}").split("=", 1)[1] for folder in folders]
    return [f"hydra.searchpath=[{','.join(entries)}]"]


def sweep_files() -> list[Path]:
    """Every search space: the shipped ones, then the user's (config folders' sweeps/ and the
    older $GRU_EXP_SWEEPS_PATH folders). A name given twice is refused (ConfigError): the later
    file would silently replace the earlier one."""
    older = [Path(p).expanduser().absolute() for p in os.environ.get("GRU_EXP_SWEEPS_PATH", "").split(os.pathsep) if p]
    for folder in older:
        if not folder.is_dir():
            raise ConfigError(f"GRU_EXP_SWEEPS_PATH names {str(folder)!r}, which is not a folder of search spaces "
                              f"(<name>.yaml files; several folders separated by {os.pathsep!r}).")
    folders = [Path(SWEEPS_DIR), *(d / "sweeps" for d in user_config_dirs()), *older]
    files: dict[str, Path] = {}
    for path in (p for folder in _once(folders) for p in sorted(folder.glob("*.yaml"))):
        if path.stem in files:
            shipped = " (a shipped search space)" if files[path.stem].parent == Path(SWEEPS_DIR) else ""
            raise ConfigError(f"The search space {path} has the name {path.stem!r} of {files[path.stem]}{shipped}; "
                              f"sweep={path.stem} would run only one of them and nothing would say which: rename "
                              f"yours (e.g. my_{path.name}).")
        files[path.stem] = path
    return list(files.values())


# Folders of tools, never of configs Hydra is asked for (a user's hidden .drafts/ may be: experiment=.drafts/x)
TOOL_FOLDERS = frozenset({".git", ".hg", ".svn", ".hydra", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache",
                          "__pycache__", "node_modules", ".ipynb_checkpoints"})


def config_files(source: Path, skip: Sequence[str]) -> list[Path]:
    """The YAML files under the config folder ``source`` that Hydra can read, through links to
    folders (a link to a folder it is already inside is a loop and is not followed), never in
    tools' folders (TOOL_FOLDERS: .git, a run's .hydra, a virtualenv) or the output folders
    ``skip`` (a project folder that is also the config folder holds its runs, cache and data)."""
    skipped = {Path(p).expanduser().resolve() for p in skip}
    found = []
    for root, dirs, files in os.walk(source, followlinks=True):
        inside = {Path(root).resolve(), *(p.resolve() for p in Path(root).parents)}
        dirs[:] = sorted(d for d in dirs if d not in TOOL_FOLDERS and (Path(root) / d).resolve() not in inside | skipped)
        found += [Path(root) / f for f in sorted(files) if f.endswith((".yaml", ".yml")) and Path(root, f).is_file()]
    return sorted(found)


def conf_snapshot(cache_dir: str, skip: Sequence[str]) -> list[str]:
    """A frozen copy of the config folders (shipped conf/, then the user's: their YAML files, see
    :func:`config_files`; ``skip``: the output folders) for a process that composes configs for
    hours (a sweep worker): editing them meanwhile (a new key, a changed experiment) can neither
    break nor silently change its later trials. Stored under ``cache_dir``/conf by a hash of the
    contents, so workers share it; a failed copy leaves nothing behind."""
    sources = [(folder, config_files(folder, skip)) for folder in (Path(CONF_DIR), *user_config_dirs())]
    digest = hashlib.sha256()
    for source, files in sources:
        for path in files:
            digest.update(f"{source}:{path.relative_to(source)}\0".encode() + path.read_bytes() + b"\0")
    target = Path(cache_dir) / "conf" / digest.hexdigest()[:16]
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            for i, (source, files) in enumerate(sources):
                (staging / str(i)).mkdir()
                for path in files:
                    copy = staging / str(i) / path.relative_to(source)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, copy)
            staging.rename(target)
        except OSError:  # another worker made the same copy first, or the copy failed: no staging folder left
            shutil.rmtree(staging, ignore_errors=True)
            if not target.is_dir():
                raise
    return [str(target / str(i)) for i in range(len(sources))]


def missing_option(text: str) -> Optional[tuple[str, str]]:
    """For Hydra's "Could not find 'group/name'" (a config group option that does not exist):
    (group, problem), the problem in one sentence with the options there are and, for experiments
    and search spaces, where a file of that name the user has (``./sweeps/name.yaml``, a path given
    as the name) would have to be to be found. None for any other error."""
    listed = re.search(r"Available options in '([^']+)':\s*(.*?)\s*Config search path", text)
    found = listed and re.search(rf"Could not find '{re.escape(listed.group(1))}/([^']+)'", text)
    if not found:
        return None
    group, name = listed.group(1), found.group(1)
    folder = "sweeps" if group == "sweep" else group  # the folder a config folder holds them in
    stem = Path(name).name.removesuffix(".yaml")
    problem = (f"{group}={name!r}: there is no {group} of that name; available: "
               f"{', '.join(listed.group(2).split()) or 'none'}")
    mine = next((p.absolute() for p in (Path(name), Path(f"{name}.yaml"), Path(folder) / f"{stem}.yaml",
                                        Path(group) / f"{stem}.yaml") if p.is_file()), None)
    if group not in ("experiment", "sweep"):  # Hydra's own groups (hydra/launcher, ...): no files of the user's
        return group, problem
    if mine is not None and mine.parent.name == folder:
        return group, (f"{problem}. Your {mine} is not in a config folder gru-exp reads: set {CONFIG_PATH_ENV}="
                       f"{mine.parent.parent} (the folder that holds {folder}/; several: {os.pathsep!r}-separated) "
                       f"and give {group}={stem}")
    where = f"Your {mine} is not in a config folder gru-exp reads: " if mine is not None else "Your own files go "
    return group, (f"{problem}. {where}{'move it ' if mine is not None else ''}to <folder>/{folder}/{stem}.yaml, "
                   f"set {CONFIG_PATH_ENV}=<folder> and give {group}={stem}")
