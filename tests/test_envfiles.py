"""The users' environment files: the shell snippet in real shells, the module file in Lua
(lupa) and in real Lmod when installed, the value translator, and the deployment units."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import nlmr
from nlmr.envfiles import (
    ENV_SCRIPT,
    LMOD_TEMPLATE,
    Literal,
    Ref,
    ShellValue,
    UserEnv,
    env_files,
    env_files_for,
    lmod_path,
    lua_expr,
    parse_shell_value,
    render_lmod,
    render_shell,
    shell_word,
    user_env,
    write_env_files,
)
from nlmr.target import EnvSettings, Target

NAMES = (
    "NLMR_MIRROR_TARGET",
    "NLMR_MIRROR_ROOT",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
    "HF_HOME",
    "HF_MODULES_CACHE",
    "HF_DATASETS_CACHE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HUGGINGFACE_HUB_CACHE",
)
SHELLS = [s for s in ("bash", "dash", "zsh", "sh") if shutil.which(s)]
UNSET = "<unset>"
# a directory name that needs every kind of quoting
ODD = 'odd "dir" $HOME `x` \\ ]] ]=] it\'s'


# -- helpers ----------------------------------------------------------------------------


def _shell_cmd(shell: str) -> list[str]:
    return [shell, "-f"] if shell == "zsh" else [shell]  # zsh -f: no startup files


def _base_env(tmp: Path, **extra: str) -> dict[str, str]:
    home = tmp / "home dir"
    scratch = tmp / "tmp dir"
    home.mkdir(exist_ok=True)
    scratch.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "USER": "alice", "TMPDIR": str(scratch)}
    env.update(extra)
    return env


def _printer(names: tuple[str, ...] = NAMES) -> str:
    return "".join(f"printf '%s=%s\\n' {n} \"${{{n}-{UNSET}}}\"; " for n in names)


def source(
    shell: str, snippet: Path, environ: Mapping[str, str], *, times: int = 1, prefix: str = ""
) -> dict[str, str]:
    """Source ``snippet`` ``times`` times in ``shell`` and return the variables it set."""
    script = prefix + '. "$1"; ' * times + _printer()
    out = subprocess.run(
        [*_shell_cmd(shell), "-c", script, "nlmr-test", str(snippet)],
        env=dict(environ),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stderr == ""
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


def _write_snippet(tmp: Path, env: UserEnv) -> Path:
    path = tmp / "snippet dir" / ENV_SCRIPT
    path.parent.mkdir(exist_ok=True)
    path.write_text(render_shell(env))
    return path


def expected(env: UserEnv, home: str) -> dict[str, str]:
    """What every rendering must give with the default per-user directory."""
    root = env.root.rstrip("/")
    user = f"{home}/.cache/nlmr-hf"
    return {
        "NLMR_MIRROR_TARGET": env.target,
        "NLMR_MIRROR_ROOT": root,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": f"{root}/hub",
        "HF_HOME": user,
        "HF_MODULES_CACHE": f"{user}/modules",
        "HF_DATASETS_CACHE": f"{user}/datasets",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HUGGINGFACE_HUB_CACHE": f"{root}/hub",
    }


def evaluate(value: ShellValue, environ: Mapping[str, str]) -> str:
    """The reference semantics of a parsed value."""
    out = []
    for part in value:
        if isinstance(part, Literal):
            out.append(part.text)
        else:
            got = environ.get(part.name, "")
            if got == "" and part.default is not None:
                got = evaluate(part.default, environ)
            out.append(got)
    return "".join(out)


# -- Lua --------------------------------------------------------------------------------

LUA_VERSIONS = ("lua51", "lua54")  # Lmod runs on Lua 5.1 to 5.4

_RUN_MODULE = """
function(src, environ, record)
  local lookup = function(name) return environ[name] end
  local sandbox = {
    os = {getenv = lookup},
    setenv = function(k, v) record("setenv", k, v) end,
    whatis = function(s) record("whatis", s, "") end,
    help = function(s) record("help", s, "") end,
    family = function(s) record("family", s, "") end,
    string = string,
  }
  local chunk
  if setfenv then
    chunk = assert(loadstring(src, "modulefile"))
    setfenv(chunk, sandbox)
  else
    chunk = assert(load(src, "modulefile", "t", sandbox))
  end
  chunk()
end
"""


def lua_runtime(version: str) -> Any:
    lupa = pytest.importorskip("lupa", exc_type=ImportError)
    try:
        mod = __import__(f"lupa.{version}", fromlist=["LuaRuntime"])
    except ImportError:
        pytest.skip(f"lupa {lupa.__version__} has no {version}")
    return mod.LuaRuntime(unpack_returned_tuples=True)


def run_module(version: str, text: str, environ: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Execute a module file with stubbed Lmod functions; the calls it made, in order.

    The sandbox has no print/io: a module that writes anything fails.
    """
    lua = lua_runtime(version)
    calls: list[tuple[str, str, str]] = []
    lua.eval(_RUN_MODULE)(
        text, lua.table_from(dict(environ)), lambda f, a, b: calls.append((f, a, b))
    )
    return calls


def module_values(version: str, text: str, environ: Mapping[str, str]) -> dict[str, str]:
    return {a: b for f, a, b in run_module(version, text, environ) if f == "setenv"}


def lua_eval(version: str, expr: str, environ: Mapping[str, str]) -> str:
    prelude = LMOD_TEMPLATE.split("whatis(")[0]  # the env_or helper
    text = prelude + f"setenv('X', {expr})\n"
    return module_values(version, text, environ)["X"]


# -- the translator ---------------------------------------------------------------------

ALLOWED: list[tuple[str, ShellValue, str, str]] = [
    # text, parsed, shell word, Lua expression
    ("/scratch/nlmr", (Literal("/scratch/nlmr"),), "/scratch/nlmr", '"/scratch/nlmr"'),
    ("/with space/x", (Literal("/with space/x"),), "/with space/x", '"/with space/x"'),
    ("$HOME", (Ref("HOME"),), "${HOME-}", 'env_or("HOME")'),
    ("${HOME}", (Ref("HOME"),), "${HOME-}", 'env_or("HOME")'),
    (
        "$HOME/.cache/$USER",
        (Ref("HOME"), Literal("/.cache/"), Ref("USER")),
        "${HOME-}/.cache/${USER-}",
        'env_or("HOME") .. "/.cache/" .. env_or("USER")',
    ),
    (
        "${TMPDIR}x",
        (Ref("TMPDIR"), Literal("x")),
        "${TMPDIR-}x",
        'env_or("TMPDIR") .. "x"',
    ),
    (
        "$TMPDIR.hf",  # a name ends where [A-Za-z0-9_] ends
        (Ref("TMPDIR"), Literal(".hf")),
        "${TMPDIR-}.hf",
        'env_or("TMPDIR") .. ".hf"',
    ),
    (
        "${SCRATCH:-/tmp}",
        (Ref("SCRATCH", (Literal("/tmp"),)),),
        "${SCRATCH:-/tmp}",
        'env_or("SCRATCH", "/tmp")',
    ),
    ("${SCRATCH:-}", (Ref("SCRATCH", ()),), "${SCRATCH:-}", 'env_or("SCRATCH")'),
    (
        "${XDG_CACHE_HOME:-$HOME/.cache}/nlmr-hf",
        (Ref("XDG_CACHE_HOME", (Ref("HOME"), Literal("/.cache"))), Literal("/nlmr-hf")),
        "${XDG_CACHE_HOME:-${HOME-}/.cache}/nlmr-hf",
        'env_or("XDG_CACHE_HOME", env_or("HOME") .. "/.cache") .. "/nlmr-hf"',
    ),
    (
        "${A:-${B:-$C/x y}}/z",
        (Ref("A", (Ref("B", (Ref("C"), Literal("/x y"))),)), Literal("/z")),
        "${A:-${B:-${C-}/x y}}/z",
        'env_or("A", env_or("B", env_or("C") .. "/x y")) .. "/z"',
    ),
    ("/a}b/æøå", (Literal("/a}b/æøå"),), "/a}b/æøå", '"/a}b/æøå"'),
    ("/a~b", (Literal("/a~b"),), "/a~b", '"/a~b"'),
    ("", (), "", '""'),
]


@pytest.mark.parametrize(("text", "parsed", "word", "lua"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_translator_allowed_forms(text: str, parsed: ShellValue, word: str, lua: str) -> None:
    assert parse_shell_value(text) == parsed
    assert shell_word(parsed) == word
    assert lua_expr(parsed) == lua


REJECTED = [
    ('/a"b', "double quote"),
    ("/a'b", "single quote"),
    ("/a`id`", "command substitution (`"),
    ("/a\\ b", "backslash"),
    ("$(id -un)", "command substitution $("),
    ("$((1+1))", "arithmetic expansion"),
    ("$1", "special parameter ($1)"),
    ("$$", "special parameter ($$)"),
    ("$?", "special parameter"),
    ("/x/$", "a lone $ at the end"),
    ("$ x", "a lone $"),
    ("$/x", "a lone $"),
    ("${#HOME}", "string length"),
    ("${!HOME}", "indirect expansion"),
    ("${X:=d}", "assignment ${NAME:=...}"),
    ("${X:+d}", "alternative value"),
    ("${X:?d}", "error expansion"),
    ("${X-d}", "${NAME-...} (use ${NAME:-...})"),
    ("${X=d}", "assignment ${NAME=...}"),
    ("${X+d}", "alternative value ${NAME+...}"),
    ("${X?d}", "error expansion ${NAME?...}"),
    ("${X%/*}", "suffix removal"),
    ("${X#*/}", "prefix removal"),
    ("${X/a/b}", "substitution"),
    ("${X^^}", "case modification"),
    ("${X,,}", "case modification"),
    ("${X@Q}", "transformation"),
    ("${X[0]}", "array subscript"),
    ("${X:1}", "substring expansion"),
    ("${X", "unterminated"),
    ("${", "unterminated"),
    ("${X:-abc", "unterminated"),
    ("${X:-${Y}", "unterminated"),
    ("${}", "bad variable name"),
    ("${1}", "special parameter in ${...}"),
    ("${X y}", "unexpected ' '"),
    ("~/hf", "tilde expansion"),
    ("${X:-~/hf}", "tilde expansion"),
    ("/a\nb", "control character"),
    ("/a\tb", "control character"),
    ("${X:-$(id)}", "command substitution"),
]


@pytest.mark.parametrize(("text", "construct"), REJECTED, ids=[r[0] for r in REJECTED])
def test_translator_rejects_other_constructs(text: str, construct: str) -> None:
    with pytest.raises(ValueError, match="unsupported shell syntax") as info:
        parse_shell_value(text)
    assert construct in str(info.value)


ENVIRONS: list[dict[str, str]] = [
    {"HOME": "/home/alice", "USER": "alice", "TMPDIR": "/tmp/job 1"},
    {"HOME": "/home/bob", "USER": "bob", "XDG_CACHE_HOME": "/xdg", "A": "", "B": "/b", "C": "c"},
    {"HOME": "", "SCRATCH": "/scratch/x", "A": "/a", "TMPDIR": ""},
    {"HOME": "/nonexistent"},  # the rest unset (zsh sets HOME itself when it is unset)
]


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_words_expand_as_the_reference(shell: str) -> None:
    texts = [a[0] for a in ALLOWED]
    script = "".join(f"printf '%s\\n' \"{shell_word(parse_shell_value(t))}\"; " for t in texts)
    for environ in ENVIRONS:
        out = subprocess.run(
            [*_shell_cmd(shell), "-u", "-c", script],  # -u: the words are nounset-safe
            env={"PATH": os.environ["PATH"], **environ},
            capture_output=True,
            text=True,
            check=True,
        )
        want = [evaluate(parse_shell_value(t), environ) for t in texts]
        assert out.stdout.splitlines() == want, environ


@pytest.mark.parametrize("version", LUA_VERSIONS)
def test_lua_expressions_evaluate_as_the_reference(version: str) -> None:
    for environ in ENVIRONS:
        for text, *_ in ALLOWED:
            value = parse_shell_value(text)
            assert lua_eval(version, lua_expr(value), environ) == evaluate(value, environ), (
                text,
                environ,
            )


# -- UserEnv ----------------------------------------------------------------------------


def test_variables_order_and_defaults() -> None:
    env = UserEnv(root="/cluster/shared/nlmr/", target="saga")
    values = env.variables()
    assert tuple(values) == NAMES
    assert values["NLMR_MIRROR_ROOT"] == "/cluster/shared/nlmr"
    assert values["HF_HUB_CACHE"] == "/cluster/shared/nlmr/hub"
    assert values["HF_HOME"] == "${XDG_CACHE_HOME:-${HOME-}/.cache}/nlmr-hf"
    assert values["HF_MODULES_CACHE"] == "${XDG_CACHE_HOME:-${HOME-}/.cache}/nlmr-hf/modules"
    assert values["HF_DATASETS_CACHE"] == "${XDG_CACHE_HOME:-${HOME-}/.cache}/nlmr-hf/datasets"


def test_variables_with_explicit_caches() -> None:
    env = UserEnv(
        root="/cvmfs/nlmr.example.org/mirror",
        target="cvmfs-eu",
        user_dir="/scratch/$USER/hf",
        datasets_cache="${LOCALSCRATCH:-$TMPDIR}/hf-datasets",
        modules_cache="$HOME/.hf-modules",
    )
    values = env.variables()
    assert values["HF_HOME"] == "/scratch/${USER-}/hf"
    assert values["HF_DATASETS_CACHE"] == "${LOCALSCRATCH:-${TMPDIR-}}/hf-datasets"
    assert values["HF_MODULES_CACHE"] == "${HOME-}/.hf-modules"
    assert values["HF_HUB_CACHE"] == "/cvmfs/nlmr.example.org/mirror/hub"


def test_root_is_escaped_for_the_shell() -> None:
    env = UserEnv(root=f"/m/{ODD}", target="saga")
    assert (
        env.variables()["NLMR_MIRROR_ROOT"]
        == "/m/" + 'odd \\"dir\\" \\$HOME \\`x\\` \\\\ ]] ]=] it\'s'
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"root": "relative/mirror"}, "root: 'relative/mirror' must be an absolute path"),
        ({"root": "/a\nb"}, "control character"),
        ({"target": "Saga"}, "target: 'Saga' must be lowercase"),
        ({"target": "saga/x"}, "target"),
        ({"target": ""}, "target"),
        ({"user_dir": "cache/hf"}, "user_dir: 'cache/hf' must be an absolute path"),
        ({"user_dir": ""}, "user_dir: must not be empty"),
        ({"user_dir": "$(mktemp -d)"}, "command substitution"),
        ({"datasets_cache": "~/ds"}, "tilde expansion"),
        ({"modules_cache": "modules"}, "modules_cache"),
    ],
)
def test_user_env_rejects_bad_values(kwargs: dict[str, str], message: str) -> None:
    args = {"root": "/m", "target": "saga", **kwargs}
    with pytest.raises(ValueError) as info:
        UserEnv(**args)
    assert message in str(info.value)


def test_user_env_of_a_target() -> None:
    target = Target(
        name="saga",
        root=Path("/cluster/shared/nlmr"),
        description="Saga's mirror",
        env=EnvSettings(user_dir="/scratch/$USER/hf", datasets_cache="$TMPDIR/ds"),
    )
    env = user_env(target)
    assert env == UserEnv(
        root="/cluster/shared/nlmr",
        target="saga",
        user_dir="/scratch/$USER/hf",
        datasets_cache="$TMPDIR/ds",
        description="Saga's mirror",
    )
    assert env_files_for(target) == env_files(env)
    assert set(env_files(env)) == {"nlmr-env.sh", "modulefiles/nlmr-mirror/saga.lua"}


# -- the shell snippet ------------------------------------------------------------------


def test_shell_header_names_target_and_version() -> None:
    text = render_shell(UserEnv(root="/m x", target="saga", description="line one\nline two"))
    first = text.splitlines()[:3]
    assert first[0].startswith('# nlmr mirror environment for target "saga"')
    assert f"nlmr {nlmr.__version__}" in first[0]
    assert first[1] == "# line one line two"  # a description cannot escape its comment
    assert "#   . '/m x/nlmr-env.sh'" in text


@pytest.mark.parametrize("shell", SHELLS)
def test_sourced_snippet_sets_the_variables(shell: str, tmp_path: Path) -> None:
    root = tmp_path / "shared mirror"
    env = UserEnv(root=str(root), target="saga")
    snippet = _write_snippet(tmp_path, env)
    environ = _base_env(tmp_path)
    home = environ["HOME"]
    got = source(shell, snippet, environ)
    assert got == expected(env, home)
    for name in ("HF_HOME", "HF_MODULES_CACHE", "HF_DATASETS_CACHE"):
        assert Path(got[name]).is_dir(), name
    # sourcing twice, also under set -eu, changes nothing
    assert source(shell, snippet, environ, times=2) == got
    assert source(shell, snippet, environ, times=2, prefix="set -eu; ") == got


@pytest.mark.parametrize("shell", SHELLS)
def test_snippet_follows_the_users_variables(shell: str, tmp_path: Path) -> None:
    env = UserEnv(
        root="/cluster/shared/nlmr",
        target="saga",
        user_dir="${NLMR_HF:-$TMPDIR/hf-$USER}",
        datasets_cache="${SCRATCH:-$TMPDIR}/datasets",
    )
    snippet = _write_snippet(tmp_path, env)
    environ = _base_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    got = source(shell, snippet, environ)
    scratch = environ["TMPDIR"]
    assert got["HF_HOME"] == f"{scratch}/hf-alice"
    assert got["HF_MODULES_CACHE"] == f"{scratch}/hf-alice/modules"
    assert got["HF_DATASETS_CACHE"] == f"{scratch}/datasets"
    assert Path(scratch, "hf-alice", "modules").is_dir()
    environ["SCRATCH"] = str(tmp_path / "scratch")
    assert source(shell, snippet, environ)["HF_DATASETS_CACHE"] == f"{tmp_path}/scratch/datasets"


@pytest.mark.parametrize("shell", SHELLS)
def test_snippet_is_quiet_when_directories_cannot_be_made(shell: str, tmp_path: Path) -> None:
    env = UserEnv(root="/m", target="saga", user_dir="$TMPDIR/hf")
    snippet = _write_snippet(tmp_path, env)
    environ = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}  # TMPDIR unset
    got = source(shell, snippet, environ, prefix="set -eu; ")  # asserts empty stderr
    assert got["HF_HOME"] == "/hf"


def test_huggingface_hub_sees_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "shared mirror"
    env = UserEnv(root=str(root), target="saga")
    snippet = _write_snippet(tmp_path, env)
    environ = _base_env(tmp_path)
    probe = (
        "import json, huggingface_hub.constants as c; "
        "print(json.dumps([c.HF_HUB_OFFLINE, c.HF_HUB_CACHE, c.HF_HOME]))"
    )
    out = subprocess.run(
        ["bash", "-c", '. "$1"; exec "$2" -c "$3"', "t", str(snippet), sys.executable, probe],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    offline, hub_cache, hf_home = json.loads(out.stdout)
    assert offline is True
    assert hub_cache == f"{root}/hub"
    assert hf_home == f"{environ['HOME']}/.cache/nlmr-hf"


# -- the module file --------------------------------------------------------------------


def test_template_file_is_the_renderers_template() -> None:
    text = (REPO / "sync/modulefiles/nlmr-mirror.lua.in").read_text(encoding="utf-8")
    preamble, marker, template = text.partition("-- ---- template below this line ----\n")
    assert marker, "the marker line is missing"
    assert all(line.startswith("--") for line in preamble.splitlines())
    assert template == LMOD_TEMPLATE


def test_rendered_module_fills_every_placeholder() -> None:
    env = UserEnv(root=f"/m/{ODD}", target="saga", description="Saga @TARGET@ mirror")
    text = render_lmod(env)
    # the template's lines, placeholders as wildcards, match the output line by line
    pattern = re.escape(LMOD_TEMPLATE)
    pattern = re.sub(r"@[A-Z]+@", lambda m: "(.*?)", pattern)
    assert re.fullmatch(pattern, text, flags=re.S)
    assert 'whatis("Description: Saga @TARGET@ mirror")' in text  # filled once, not re-filled
    assert not re.search(r"@(TARGET|VERSION|WHATIS|HELP|FAMILY|SETENV)@\n", text)
    assert f"nlmr {nlmr.__version__}" in text


@pytest.mark.parametrize("version", LUA_VERSIONS)
@pytest.mark.parametrize("root_name", ["shared mirror", ODD])
def test_module_agrees_with_the_snippet(version: str, root_name: str, tmp_path: Path) -> None:
    root = tmp_path / root_name
    env = UserEnv(root=str(root), target="saga", description="Saga's mirror")
    snippet = _write_snippet(tmp_path, env)
    for extra in ({}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}):
        environ = _base_env(tmp_path, **extra)
        shell = source("bash" if "bash" in SHELLS else SHELLS[0], snippet, environ)
        calls = run_module(version, render_lmod(env), environ)
        setenv = {a: b for f, a, b in calls if f == "setenv"}
        assert setenv == shell
        assert list(setenv) == list(NAMES)
        assert ("family", "nlmr_mirror", "") in calls
        whatis = [a for f, a, _ in calls if f == "whatis"]
        assert whatis == ["Name: nlmr-mirror", "Version: saga", "Description: Saga's mirror"]
        (help_text,) = [a for f, a, _ in calls if f == "help"]
        assert f"read-only at\n  {root}\n" in help_text
    assert setenv["HF_HOME"] == f"{tmp_path}/xdg/nlmr-hf"


def _lmod_init() -> Path | None:
    for candidate in (
        os.environ.get("LMOD_PKG", "") + "/init/bash",
        "/usr/share/lmod/lmod/init/bash",
        "/opt/apps/lmod/lmod/init/bash",
    ):
        if candidate.startswith("/") and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.mark.skipif(_lmod_init() is None, reason="Lmod is not installed (Debian package lmod)")
def test_real_lmod_loads_swaps_and_unloads(tmp_path: Path) -> None:
    root = tmp_path / "shared mirror"
    env = UserEnv(root=str(root), target="saga")
    write_env_files(env, root)
    environ = _base_env(tmp_path)
    shell = source("bash", root / ENV_SCRIPT, environ)
    # a second target's module beside it (its nlmr-env.sh replaces saga's)
    write_env_files(UserEnv(root=str(root), target="lumi", user_dir="$TMPDIR/hf"), root)
    out = tmp_path / "load.out"
    script = (
        f'. "{_lmod_init()}"; module use "$1/modulefiles"; '
        f'module load nlmr-mirror/saga >"$2" 2>&1; {_printer()}'
        f"module load nlmr-mirror/lumi >/dev/null 2>&1; echo ---; {_printer()}"
        f"module unload nlmr-mirror; echo ---; {_printer()}"
    )
    res = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script, "t", str(root), str(out)],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded, swapped, unloaded = (
        dict(line.split("=", 1) for line in block.strip().splitlines())
        for block in res.stdout.split("---\n")
    )
    assert loaded == shell
    assert swapped["NLMR_MIRROR_TARGET"] == "lumi"
    assert swapped["HF_HOME"] == f"{environ['TMPDIR']}/hf"
    assert set(unloaded.values()) == {UNSET}
    assert out.read_text() == ""  # loading prints nothing (batch jobs)
    assert res.stderr == ""


# -- writing the files ------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_env_files_layout_modes_and_changes(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    env = UserEnv(root=str(root), target="saga")
    written = write_env_files(env, root)
    script, module = root / ENV_SCRIPT, root / lmod_path("saga")
    assert written == [script, module]
    assert module == root / "modulefiles" / "nlmr-mirror" / "saga.lua"
    assert script.read_text() == render_shell(env)
    assert module.read_text() == render_lmod(env)
    assert _mode(script) == _mode(module) == 0o444
    assert _mode(root / "modulefiles") == _mode(module.parent) == 0o755
    assert write_env_files(env, root) == []  # unchanged: nothing written
    before = script.stat().st_ino
    assert write_env_files(env, root) == [] and script.stat().st_ino == before
    # a changed setting rewrites the files whose content changed
    changed = UserEnv(root=str(root), target="saga", datasets_cache="$TMPDIR/ds")
    assert write_env_files(changed, root) == [script, module]
    changed_desc = UserEnv(
        root=str(root), target="saga", datasets_cache="$TMPDIR/ds", description="new"
    )
    assert write_env_files(changed_desc, root) == [script, module]
    # a wrong mode is repaired
    os.chmod(script, 0o644)
    assert write_env_files(changed_desc, root) == [script]
    assert _mode(script) == 0o444
    assert not [p.name for p in root.rglob(".*.tmp")]


# -- deployment units -------------------------------------------------------------------

UNITS = REPO / "sync" / "systemd"


def _ini(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_service_unit_essentials() -> None:
    unit = _ini(UNITS / "nlmr-sync@.service")
    service = unit["Service"]
    assert service["Type"] == ["oneshot"]
    (exec_start,) = service["ExecStart"]
    assert exec_start.startswith("/") and exec_start.endswith(" sync %i")
    assert service["User"] == ["nlmr"]
    assert service["Nice"] == ["19"]
    assert service["IOSchedulingClass"] == ["idle"]
    assert service["NoNewPrivileges"] == ["yes"]
    # hardening must leave the mirror root writable
    assert service["ProtectSystem"] in (["full"], ["true"])
    assert "ReadOnlyPaths" not in service and "InaccessiblePaths" not in service
    assert "%i" in unit["Unit"]["Description"][0]
    assert "Install" not in unit  # started by its timer


def test_timer_unit_essentials() -> None:
    timer = _ini(UNITS / "nlmr-sync@.timer")
    assert timer["Timer"]["Persistent"] == ["true"]
    assert timer["Timer"]["RandomizedDelaySec"]
    assert timer["Timer"]["OnCalendar"]
    assert "Unit" not in timer["Timer"]  # the template activates nlmr-sync@<same>.service
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_units_parse_as_ini() -> None:
    for name in ("nlmr-sync@.service", "nlmr-sync@.timer"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string((UNITS / name).read_text())
        assert parser.sections()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    service = (UNITS / "nlmr-sync@.service").read_text()
    # verify checks that the command exists; the site path does not exist here
    exec_path = re.search(r"^ExecStart=(\S+)", service, flags=re.M)
    assert exec_path
    service = service.replace(exec_path.group(1), shutil.which("true") or "/bin/true")
    (tmp_path / "nlmr-sync@saga.service").write_text(service)
    shutil.copy(UNITS / "nlmr-sync@.timer", tmp_path / "nlmr-sync@saga.timer")
    res = subprocess.run(
        ["systemd-analyze", "verify", "nlmr-sync@saga.service", "nlmr-sync@saga.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == ""  # unknown keys and bad values are only warnings


def test_cron_line() -> None:
    text = (REPO / "sync" / "cron" / "nlmr-sync.cron").read_text()
    assert "MAILTO=" in text
    jobs = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 6)
    minute, hour, dom, month, dow, user, command = fields
    for field in (minute, hour, dom, month, dow):
        assert re.fullmatch(r"[0-9*/,-]+", field), field
    assert user == "nlmr"
    assert "nlmr sync" in command and ">>" in command and "2>&1" in command
    assert "%" not in command  # cron would turn it into a newline
    assert "flock" not in command
    subprocess.run(["sh", "-n", "-c", command], check=True)
