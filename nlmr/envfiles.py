"""The users' environment for a mirror: a POSIX shell snippet and an Lmod module file.

Users of a read-only mirror need, on every compute node:

* ``HF_HUB_OFFLINE=1``: without it each cache miss costs ~23 s of HTTP retries and a
  tokenizer load over two minutes on a node without internet.
* ``HF_HUB_CACHE=ROOT/hub``: the read-only hub-cache tree that ``nlmr sync`` writes.
* ``HF_HOME``, ``HF_MODULES_CACHE``, ``HF_DATASETS_CACHE`` in a writable per-user place:
  ``trust_remote_code`` copies ``.py`` files into the modules cache and ``datasets``
  writes Arrow files and locks even for local paths, so none of them may point into the
  read-only tree.

Both renderings come from one list of variables (:meth:`UserEnv.variables`). Values of
the per-user directories are written in a small shell syntax (``$HOME``, ``${TMPDIR}``,
``${XDG_CACHE_HOME:-$HOME/.cache}``) that :func:`parse_shell_value` checks; the shell
snippet exports them as they are (nounset-safe) and the module file turns them into
``os.getenv`` expressions evaluated when the module loads.

Layout beside the mirror (what :func:`write_env_files` writes, relative to ROOT)::

    nlmr-env.sh                           . ROOT/nlmr-env.sh
    modulefiles/nlmr-mirror/<target>.lua  module use ROOT/modulefiles; module load nlmr-mirror
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlmr.fsutil import atomic_write

if TYPE_CHECKING:
    from nlmr.target import Target

__all__ = [
    "ENV_SCRIPT",
    "LMOD_TEMPLATE",
    "MODULEFILES_DIR",
    "MODULE_NAME",
    "Literal",
    "Ref",
    "ShellValue",
    "UserEnv",
    "env_files",
    "env_files_for",
    "lmod_path",
    "lua_expr",
    "parse_shell_value",
    "render_lmod",
    "render_shell",
    "shell_word",
    "user_env",
    "write_env_files",
]

#: the shell snippet, relative to the mirror root
ENV_SCRIPT = "nlmr-env.sh"
#: the directory operators (or users) add with ``module use``
MODULEFILES_DIR = "modulefiles"
#: the module's name; the version part is the target name (``nlmr-mirror/saga``)
MODULE_NAME = "nlmr-mirror"
#: Lmod family: one mirror module at a time. Not ``nlmr-mirror``: Lmod exports
#: ``LMOD_FAMILY_<NAME>`` and a ``-`` would make that an invalid shell variable name.
LMOD_FAMILY = "nlmr_mirror"

FILE_MODE = 0o444
DIR_MODE = 0o755

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TARGET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- the value syntax -------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """Text taken as it is."""

    text: str


@dataclass(frozen=True)
class Ref:
    """``$NAME`` / ``${NAME}`` (``default`` None) or ``${NAME:-default}``.

    An unset variable reads as the empty string, as in the shell; ``:-`` also replaces
    a set but empty one.
    """

    name: str
    default: ShellValue | None = None


#: a parsed value: the concatenation of its parts
ShellValue = tuple["Literal | Ref", ...]

# Characters with a quoting or expansion meaning the translator does not model. Values
# are quoted by nlmr, so users never need them.
_QUOTING = {
    '"': 'a double quote (")',
    "'": "a single quote (')",
    "`": "command substitution (`...`)",
    "\\": "a backslash escape (\\)",
}
# ${NAME<op>...} forms other than ``:-``, longest first
_OPERATORS = (
    (":-", None),
    (":=", "assignment ${NAME:=...}"),
    (":+", "alternative value ${NAME:+...}"),
    (":?", "error expansion ${NAME:?...}"),
    ("-", "${NAME-...} (use ${NAME:-...})"),
    ("=", "assignment ${NAME=...}"),
    ("+", "alternative value ${NAME+...}"),
    ("?", "error expansion ${NAME?...}"),
    ("%", "suffix removal ${NAME%...}"),
    ("#", "prefix removal ${NAME#...}"),
    ("/", "substitution ${NAME/...}"),
    ("^", "case modification ${NAME^...}"),
    (",", "case modification ${NAME,...}"),
    ("@", "transformation ${NAME@...}"),
    ("[", "an array subscript ${NAME[...]}"),
    (":", "substring expansion ${NAME:offset}"),
)


def parse_shell_value(text: str) -> ShellValue:
    """Parse a value in the small shell syntax the environment files support.

    Allowed: literal text (spaces included), ``$NAME``, ``${NAME}`` and
    ``${NAME:-default}``, where ``default`` is again such a value (nesting allowed).

    Args:
        text: the value as written in a target file, e.g.
            ``${XDG_CACHE_HOME:-$HOME/.cache}/nlmr-hf``.

    Returns:
        The parts, adjacent literals merged.

    Raises:
        ValueError: any other construct (quotes, backslashes, command or arithmetic
            substitution, special parameters, other ``${...}`` operators, a leading
            ``~``, control characters); the message names it and its position.
    """
    parts, end = _parse(text, 0, in_braces=False)
    assert end == len(text)
    return parts


def _reject(text: str, pos: int, what: str) -> ValueError:
    return ValueError(
        f"unsupported shell syntax in {text!r} at offset {pos}: {what}; "
        "allowed are literal text, $NAME, ${NAME} and ${NAME:-default}"
    )


def _parse(text: str, pos: int, *, in_braces: bool) -> tuple[ShellValue, int]:
    parts: list[Literal | Ref] = []
    buf: list[str] = []
    start = pos

    def flush() -> None:
        if buf:
            parts.append(Literal("".join(buf)))
            buf.clear()

    while pos < len(text):
        ch = text[pos]
        if in_braces and ch == "}":
            break
        if ch == "~" and pos == start:
            raise _reject(text, pos, "tilde expansion (~); write $HOME")
        if ch in _QUOTING:
            raise _reject(text, pos, _QUOTING[ch])
        if _CONTROL.match(ch):
            raise _reject(text, pos, f"a control character {ch!r}")
        if ch != "$":
            buf.append(ch)
            pos += 1
            continue
        flush()
        ref, pos = _parse_dollar(text, pos)
        parts.append(ref)
    else:
        if in_braces:
            raise _reject(text, len(text), "an unterminated ${...}")
    flush()
    return tuple(parts), pos


def _parse_dollar(text: str, pos: int) -> tuple[Ref, int]:
    """Parse the expansion starting at ``text[pos] == "$"``."""
    nxt = text[pos + 1 : pos + 2]
    if nxt == "(":
        if text[pos + 2 : pos + 3] == "(":
            raise _reject(text, pos, "arithmetic expansion $((...))")
        raise _reject(text, pos, "command substitution $(...)")
    if nxt == "":
        raise _reject(text, pos, "a lone $ at the end")
    if nxt != "{":
        m = _NAME.match(text, pos + 1)
        if not m:
            what = "a special parameter" if nxt in "$?!#@*-0123456789" else "a lone $"
            raise _reject(text, pos, f"{what} (${nxt})" if nxt.strip() else what)
        return Ref(m.group()), m.end()
    # ${...}
    body = pos + 2
    if text[body : body + 1] == "#":
        raise _reject(text, pos, "string length ${#NAME}")
    if text[body : body + 1] == "!":
        raise _reject(text, pos, "indirect expansion ${!NAME}")
    m = _NAME.match(text, body)
    if not m:
        if body >= len(text):
            raise _reject(text, pos, "an unterminated ${...}")
        nxt = text[body]
        what = "a special parameter" if nxt in "$?#@*-0123456789" else "a bad variable name"
        raise _reject(text, pos, f"{what} in ${{...}}")
    name, after = m.group(), m.end()
    if text[after : after + 1] == "}":
        return Ref(name), after + 1
    for op, problem in _OPERATORS:
        if text.startswith(op, after):
            if problem is not None:
                raise _reject(text, pos, problem)
            default, end = _parse(text, after + len(op), in_braces=True)
            return Ref(name, default), end + 1
    if after >= len(text):
        raise _reject(text, pos, "an unterminated ${...}")
    raise _reject(text, after, f"unexpected {text[after]!r} in ${{...}}")


def _absolute(value: ShellValue, field: str, text: str) -> None:
    """A writable directory must not depend on the current directory."""
    if not value:
        raise ValueError(f"{field}: must not be empty")
    if isinstance(value[0], Literal) and not value[0].text.startswith("/"):
        raise ValueError(f"{field}: {text!r} must be an absolute path or start with a $VARIABLE")


# -- rendering values -------------------------------------------------------------------


def shell_word(value: ShellValue) -> str:
    """The text between the double quotes of ``export NAME="..."``.

    ``$NAME`` becomes ``${NAME-}`` so the snippet also works under ``set -u`` (an unset
    variable is empty, as in the module file); literals are escaped for double quotes.
    """
    out: list[str] = []
    for part in value:
        if isinstance(part, Literal):
            out.append(re.sub(r'([\\"$`])', r"\\\1", part.text))
        elif part.default is None:
            out.append(f"${{{part.name}-}}")
        else:
            out.append(f"${{{part.name}:-{shell_word(part.default)}}}")
    return "".join(out)


def lua_string(text: str) -> str:
    """A double-quoted Lua string literal of ``text``."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _CONTROL.match(ch):
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def lua_expr(value: ShellValue) -> str:
    """A Lua expression computing ``value`` when the module loads.

    ``$NAME`` becomes ``env_or("NAME")`` and ``${NAME:-d}`` becomes
    ``env_or("NAME", <d>)``; ``env_or`` is defined at the top of the module file.
    """
    pieces: list[str] = []
    for part in value:
        if isinstance(part, Literal):
            pieces.append(lua_string(part.text))
        elif part.default is None or not part.default:
            pieces.append(f"env_or({lua_string(part.name)})")
        else:
            pieces.append(f"env_or({lua_string(part.name)}, {lua_expr(part.default)})")
    return " .. ".join(pieces) if pieces else '""'


def _lua_long_string(text: str) -> str:
    """``text`` as a Lua long bracket string, of a level that does not occur in it."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[\n{text}]{eq}]"


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


# -- the environment --------------------------------------------------------------------


@dataclass(frozen=True)
class UserEnv:
    """The environment users of one mirror target need.

    Attributes:
        root: the mirror root, absolute, as users see it (``/cluster/shared/nlmr``,
            ``/cvmfs/nlmr.example.org/mirror``); taken literally (spaces are fine).
        target: the target's name (``saga``); the module is ``nlmr-mirror/<target>``.
        user_dir: writable per-user ``HF_HOME``, in the value syntax of
            :func:`parse_shell_value`.
        datasets_cache: ``HF_DATASETS_CACHE`` (default ``<user_dir>/datasets``).
        modules_cache: ``HF_MODULES_CACHE`` (default ``<user_dir>/modules``).
        description: one line for the header and ``module whatis``.

    Raises:
        ValueError: (on construction) a relative root, a bad target name, or a
            directory value outside the supported syntax.
    """

    root: str
    target: str
    user_dir: str = "${XDG_CACHE_HOME:-$HOME/.cache}/nlmr-hf"
    datasets_cache: str | None = None
    modules_cache: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.root.startswith("/"):
            raise ValueError(f"root: {self.root!r} must be an absolute path")
        if _CONTROL.search(self.root):
            raise ValueError(f"root: {self.root!r} contains a control character")
        if not _TARGET.match(self.target):
            raise ValueError(
                f"target: {self.target!r} must be lowercase letters, digits, - and _ "
                "(at most 40, starting with a letter or digit)"
            )
        self._values()  # check the syntax now, not when rendering

    def _values(self) -> list[tuple[str, ShellValue]]:
        root = self.root.rstrip("/") or "/"
        hub: ShellValue = (Literal(os.path.join(root, "hub")),)
        user: dict[str, ShellValue] = {}
        for field, text in (
            ("user_dir", self.user_dir),
            ("modules_cache", self.modules_cache),
            ("datasets_cache", self.datasets_cache),
        ):
            if text is not None:
                user[field] = parse_shell_value(text)
                _absolute(user[field], field, text)
        home = user["user_dir"]
        modules = user.get("modules_cache", (*home, Literal("/modules")))
        datasets = user.get("datasets_cache", (*home, Literal("/datasets")))
        one: ShellValue = (Literal("1"),)
        return [
            ("NLMR_MIRROR_TARGET", (Literal(self.target),)),
            ("NLMR_MIRROR_ROOT", (Literal(root),)),
            ("HF_HUB_OFFLINE", one),
            ("HF_HUB_CACHE", hub),
            ("HF_HOME", _merge(home)),
            ("HF_MODULES_CACHE", _merge(modules)),
            ("HF_DATASETS_CACHE", _merge(datasets)),
            ("TRANSFORMERS_OFFLINE", one),
            ("HF_DATASETS_OFFLINE", one),
            ("HUGGINGFACE_HUB_CACHE", hub),
        ]

    def parsed(self) -> dict[str, ShellValue]:
        """Name -> parsed value, in the order the files set them."""
        return dict(self._values())

    def variables(self) -> dict[str, str]:
        """Name -> value in shell syntax (what the snippet puts inside ``"..."``), in order.

        The order: ``NLMR_MIRROR_TARGET``, ``NLMR_MIRROR_ROOT``, ``HF_HUB_OFFLINE``,
        ``HF_HUB_CACHE``, ``HF_HOME``, ``HF_MODULES_CACHE``, ``HF_DATASETS_CACHE``, then
        the legacy names older releases read (``TRANSFORMERS_OFFLINE``,
        ``HF_DATASETS_OFFLINE``, ``HUGGINGFACE_HUB_CACHE``).
        """
        return {name: shell_word(value) for name, value in self._values()}


#: the writable directories the snippet creates
WRITABLE = ("HF_HOME", "HF_MODULES_CACHE", "HF_DATASETS_CACHE")

# Comments before a variable, shared by both files so they explain the same things.
_COMMENTS = {
    "NLMR_MIRROR_TARGET": "The mirror; plain trees: $NLMR_MIRROR_ROOT/models/<org>/<name>.",
    "HF_HUB_OFFLINE": (
        "Never contact the Hub: compute nodes have no internet, and without offline mode\n"
        "every cache miss retries for ~23 s (a tokenizer load takes minutes)."
    ),
    "HF_HUB_CACHE": 'The read-only hub cache: from_pretrained("org/name") reads it.',
    "HF_HOME": (
        "Writable per-user places, never the read-only tree: trust_remote_code copies\n"
        "code into HF_MODULES_CACHE, datasets writes Arrow files and locks."
    ),
    "TRANSFORMERS_OFFLINE": "The same for older transformers, datasets and huggingface_hub.",
}


def _merge(value: ShellValue) -> ShellValue:
    """Adjacent literals joined (a default directory appends to a literal)."""
    out: list[Literal | Ref] = []
    for part in value:
        if isinstance(part, Literal) and out and isinstance(out[-1], Literal):
            out[-1] = Literal(out[-1].text + part.text)
        else:
            out.append(part)
    return tuple(out)


def _comment(text: str, prefix: str) -> list[str]:
    return [f"{prefix} {line}" for line in text.splitlines()]


def user_env(target: Target) -> UserEnv:
    """The :class:`UserEnv` of a parsed target (its root, name and ``env:`` section)."""
    return UserEnv(
        root=str(target.root),
        target=target.name,
        user_dir=target.env.user_dir,
        datasets_cache=target.env.datasets_cache,
        modules_cache=target.env.modules_cache,
        description=target.description,
    )


# -- the shell snippet ------------------------------------------------------------------


def render_shell(env: UserEnv) -> str:
    """The snippet users ``source`` (sh, dash, bash, zsh; also under ``set -eu``).

    It exports every variable, creates the writable directories quietly and prints
    nothing; sourcing it twice gives the same environment.
    """
    from nlmr import __version__

    root = env.root.rstrip("/") or "/"
    lines = [
        f'# nlmr mirror environment for target "{env.target}" '
        f"(written by nlmr {__version__}; edits are overwritten).",
    ]
    if env.description:
        lines.append(f"# {_one_line(env.description)}")
    lines += [
        "# Use in sh, bash or zsh, also in batch jobs (it prints nothing):",
        f"#   . {shlex.quote(os.path.join(root, ENV_SCRIPT))}",
        f"# Lmod: module use {shlex.quote(os.path.join(root, MODULEFILES_DIR))}; "
        f"module load {MODULE_NAME}/{env.target}",
    ]
    for name, value in env.variables().items():
        if name in _COMMENTS:
            lines += ["", *_comment(_COMMENTS[name], "#")]
        lines.append(f'export {name}="{value}"')
    dirs = " ".join(f'"${name}"' for name in WRITABLE)
    lines += ["", f"mkdir -p -- {dirs} 2>/dev/null || :", ""]
    return "\n".join(lines)


# -- the Lmod module file ---------------------------------------------------------------

#: The module file with ``@NAME@`` placeholders; sync/modulefiles/nlmr-mirror.lua.in is
#: a copy for reading (a test keeps the two equal).
LMOD_TEMPLATE = """\
-- -*- lua -*-
-- nlmr mirror environment for target "@TARGET@" (Lmod module file).
-- Written by nlmr @VERSION@ (`nlmr sync`, `nlmr env --format lmod`); edits are overwritten.
-- Install: module use <ROOT>/modulefiles; module load nlmr-mirror/@TARGET@
-- Loading prints nothing (batch jobs); unloading unsets every variable.
-- Paths with $HOME, $TMPDIR, ... are resolved when the module loads.

-- A variable's value, or `default` (or "") when it is unset or empty: ${NAME:-default}.
local function env_or(name, default)
   local value = os.getenv(name)
   if value == nil or value == "" then
      return default or ""
   end
   return value
end

whatis("Name: nlmr-mirror")
whatis("Version: @TARGET@")
whatis(@WHATIS@)
help(@HELP@)

-- One mirror module at a time (loading another swaps).
family("@FAMILY@")

@SETENV@
"""

_PLACEHOLDER = re.compile(r"@([A-Z]+)@")


def _help_text(env: UserEnv) -> str:
    root = env.root.rstrip("/") or "/"
    hub = os.path.join(root, "hub")
    home = env.user_dir
    modules = env.modules_cache or f"{home}/modules"
    datasets = env.datasets_cache or f"{home}/datasets"
    title = f'nlmr mirror "{env.target}"'
    if env.description:
        title += f": {_one_line(env.description)}"
    lines = [title]
    lines += [
        "",
        "Models and datasets of the Nordic Language Model Repository, read-only at",
        f"  {root}",
        "",
        "Loading this module sets:",
        "  HF_HUB_OFFLINE=1     never contact the Hub (mandatory without internet)",
        f"  HF_HUB_CACHE={hub}",
        '                       AutoModel.from_pretrained("org/name") reads it',
        f"  HF_HOME={home}",
        f"  HF_MODULES_CACHE={modules}",
        f"  HF_DATASETS_CACHE={datasets}",
        "                       writable per-user caches (remote code, datasets)",
        "",
        f"Plain trees: {root}/models/<org>/<name>, {root}/datasets/<org>/<name>",
        f'Datasets: load_dataset("{root}/datasets/<org>/<name>")',
        '  (load_dataset("org/name") cannot work offline from a read-only mirror)',
        "",
    ]
    return "\n".join(lines)


def render_lmod(env: UserEnv) -> str:
    """The Lmod (Lua) module file ``nlmr-mirror/<target>``.

    ``whatis`` and ``help`` describe the mirror; ``family`` keeps one mirror module
    loaded; each variable is a ``setenv`` whose value is a Lua expression (per-user
    directories are resolved from the user's environment at load time). Loading writes
    no message and creates no directory (the Hugging Face libraries create theirs).
    """
    from nlmr import __version__

    root = env.root.rstrip("/") or "/"
    setenv: list[str] = []
    for name, value in env.parsed().items():
        if name in _COMMENTS:
            if setenv:
                setenv.append("")
            setenv += _comment(_COMMENTS[name], "--")
        setenv.append(f"setenv({lua_string(name)}, {lua_expr(value)})")
    summary = (
        _one_line(env.description)
        if env.description
        else f"Read-only Hugging Face mirror at {root} (offline mode, hub cache)"
    )
    fills = {
        "TARGET": env.target,
        "VERSION": __version__,
        "FAMILY": LMOD_FAMILY,
        "WHATIS": lua_string(f"Description: {summary}"),
        "HELP": _lua_long_string(_help_text(env)),
        "SETENV": "\n".join(setenv),
    }
    return _PLACEHOLDER.sub(lambda m: fills[m.group(1)], LMOD_TEMPLATE)


# -- files beside the mirror ------------------------------------------------------------


def lmod_path(target: str) -> str:
    """The module file's path relative to the mirror root."""
    return f"{MODULEFILES_DIR}/{MODULE_NAME}/{target}.lua"


def env_files(env: UserEnv) -> dict[str, bytes]:
    """Both files, by path relative to the mirror root."""
    return {
        ENV_SCRIPT: render_shell(env).encode("utf-8"),
        lmod_path(env.target): render_lmod(env).encode("utf-8"),
    }


def env_files_for(target: Target) -> dict[str, bytes]:
    """:func:`env_files` of a parsed target."""
    return env_files(user_env(target))


def write_env_files(env: UserEnv, dest_dir: Path) -> list[Path]:
    """Write ``nlmr-env.sh`` and ``modulefiles/nlmr-mirror/<target>.lua`` under ``dest_dir``.

    Each file is written atomically with mode 0444, and only when its content (or mode)
    differs from what is there; directories are created 0755.

    Args:
        env: the environment.
        dest_dir: usually the mirror root (or a staging copy of it).

    Returns:
        The paths written (empty when everything was current).

    Raises:
        OSError: a directory or file could not be written.
    """
    changed: list[Path] = []
    for rel, data in env_files(env).items():
        path = Path(dest_dir) / rel
        try:
            current = path.read_bytes() == data and (path.stat().st_mode & 0o7777) == FILE_MODE
        except OSError:
            current = False
        if current:
            continue
        _makedirs(path.parent)
        atomic_write(path, data, mode=FILE_MODE)
        changed.append(path)
    return changed


def _makedirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0755."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask
