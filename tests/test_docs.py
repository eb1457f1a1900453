"""Every code snippet in README.md and docs/*.md is checked, so that a change of the code that
makes the documentation wrong fails a test, not a user.

* ```python: executed, each in a fresh namespace, from a temporary folder that sees the
  repository's ``benchmarks/`` and ``studies/`` (so a snippet reads the committed files and
  writes into the temporary folder).
* ```toml: parsed, and validated as a study config by ``nas.config.StudyConfig.from_dict``; a
  snippet without a ``[study]`` table holds some sections only and is merged into
  ``studies/quickstart.toml`` first.
* ```bash, ```sh, ```console: every command is checked, never run: ``nas ...`` by the CLI's own
  parser (``nas.cli.build_parser``), ``python benchmarks/X.py ...`` by the parser of that
  script's ``main()``, ``make X`` against the Makefile's targets. Options must be spelt out in
  full (argparse would accept an abbreviation). Any other program must be listed in
  ``OTHER_PROGRAMS``.
* Inline code in the prose: ``nas ...`` and ``python benchmarks/X.py ...`` (sub-commands and
  options), ``make X`` (targets), repository paths (they exist), dotted names in ``nas``,
  ``search_spaces`` and ``attn_blocks`` and the names listed after them as in
  "`nas.stats` (`binomial_se`, ...)" (they import).
* Every ``import`` of those packages in a python snippet resolves (also where running the
  snippet would stop earlier).
* Relative links point at a file, and a ``#fragment`` at a heading of that file.

The tests at the end feed deliberately broken snippets to the same checks, so the checks can
fail.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import importlib.util
import io
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 300

PACKAGES = ("nas", "search_spaces", "attn_blocks")
SHELL = {"bash", "sh", "shell", "console"}
#: "" and "text": program output or a folder listing, not checked.
LANGUAGES = {"python", "toml", "text", ""} | SHELL
NAS = {"nas", ".venv/bin/nas"}
PYTHONS = {"python", "python3", ".venv/bin/python"}
#: Programs the documentation may show that these tests do not check.
OTHER_PROGRAMS = {"apt-get", "chromium", "mlflow", "optuna-dashboard", "pip", "sudo", "tensorboard"}
SEPARATORS = {"&&", "||", ";", "|", "&"}

FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<lang>[^`\s]*)\s*$")
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
DOTTED = r"(?:nas|search_spaces|attn_blocks)(?:\.[A-Za-z_]\w*)*"
#: "`nas.stats` (`binomial_se`, `mean_interval`)": names documented as members of a module.
LISTED = re.compile(rf"`({DOTTED})`\s*\(((?:\s*`[A-Za-z_]\w*`\s*,?)+)\)")
REPO_PATH = re.compile(
    r"(?:\.ci|attn_blocks|benchmarks|docs|nas|search_spaces|studies|tests)(?:/[\w.-]+)*/?"
)


class DocError(AssertionError):
    """A snippet, command, name, path or link that the documentation gets wrong."""


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Snippet:
    """A fenced code block: its page, the line of its opening fence, its language and text."""

    page: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{_rel(self.page)}:{self.line}"


@dataclass(frozen=True)
class Page:
    """A markdown page split into its fenced snippets and its prose (fenced lines blanked, so
    line numbers stay those of the file)."""

    path: Path
    snippets: tuple[Snippet, ...]
    prose: str

    def where(self, offset: int) -> str:
        """``page:line`` of a character offset into the prose."""
        return f"{_rel(self.path)}:{self.prose.count(chr(10), 0, offset) + 1}"

    def spans(self) -> Iterator[tuple[str, str]]:
        """``(where, text)`` of each inline code span, whitespace collapsed."""
        for match in SPAN.finditer(self.prose):
            if re.search(r"\n\s*\n", match[1]):
                raise DocError(f"{self.where(match.start())}: a backtick is never closed")
            yield self.where(match.start()), " ".join(match[1].split())


def parse_page(path: Path, text: str | None = None) -> Page:
    """Split a markdown page (``text``, or the file's own) into snippets and prose."""
    lines = (path.read_text() if text is None else text).splitlines()
    snippets: list[Snippet] = []
    prose: list[str] = []
    opened: tuple[int, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if opened is None and fence:
            opened, body = (number, fence["lang"]), []
        elif opened is not None and fence and not fence["lang"]:
            code = textwrap.dedent("\n".join(body)) + "\n"
            snippets.append(Snippet(path, opened[0], opened[1], code))
            opened = None
        elif opened is not None:
            body.append(line)
        else:
            prose.append(line)
            continue
        prose.append("")
    if opened is not None:
        raise DocError(f"{_rel(path)}:{opened[0]}: a code fence is never closed")
    return Page(path, tuple(snippets), "\n".join(prose))


@functools.cache
def page(path: Path) -> Page:
    return parse_page(path)


# -- python ----------------------------------------------------------------------------------


def run_python(snippet: Snippet, workdir: Path) -> str:
    """Execute a python snippet in a fresh namespace from ``workdir``; what it printed.

    Tracebacks name the markdown file and its line numbers."""
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        code = compile("\n" * snippet.line + snippet.text, str(snippet.page), "exec")
        os.chdir(workdir)
        with contextlib.redirect_stdout(out):
            exec(code, {"__name__": "__docs__"})
    except Exception as exc:
        raise DocError(f"{snippet.where}: the snippet raised {type(exc).__name__}: {exc}") from exc
    finally:
        os.chdir(cwd)
    return out.getvalue()


def imported_names(snippet: Snippet) -> list[str]:
    """Dotted names a python snippet imports from this project's packages."""
    try:
        tree = ast.parse(snippet.text)
    except SyntaxError as exc:
        raise DocError(f"{snippet.where}: not valid Python: {exc}") from None
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in PACKAGES:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
    return names


def check_name(where: str, dotted: str) -> None:
    """``dotted`` is a module, or a module and attributes of it, that imports."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        module_name = ".".join(parts[:end])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and f"{module_name}.".startswith(f"{exc.name}."):
                continue  # no such module: the name may be an attribute of a shorter one
            raise DocError(f"{where}: importing {module_name} fails: {exc}") from exc
        for attr in parts[end:]:
            if not hasattr(obj, attr):
                raise DocError(f"{where}: {dotted} does not import: no {attr!r} in {obj!r}")
            obj = getattr(obj, attr)
        return
    raise DocError(f"{where}: {dotted} does not import: no module {parts[0]!r}")


# -- toml ------------------------------------------------------------------------------------


def check_toml(snippet: Snippet) -> None:
    """A study config, or sections of one (merged into the quickstart's config), is valid."""
    from nas.config import StudyConfig

    try:
        data = tomllib.loads(snippet.text)
    except tomllib.TOMLDecodeError as exc:
        raise DocError(f"{snippet.where}: not valid TOML: {exc}") from None
    if "study" not in data:
        config = tomllib.loads((ROOT / "studies" / "quickstart.toml").read_text())
        for section, values in data.items():
            if isinstance(values, dict) and isinstance(config.get(section), dict):
                config[section].update(values)
            else:
                config[section] = values
        data = config
    try:
        StudyConfig.from_dict(data)
    except ValueError as exc:
        raise DocError(f"{snippet.where}: not a valid study config: {exc}") from None


# -- commands --------------------------------------------------------------------------------


def shell_commands(snippet: Snippet) -> list[list[str]]:
    """The commands of a shell snippet as argument lists (continuations joined, comments
    dropped, split at ``&&``, ``;`` and pipes; in a console snippet the ``$ `` lines only)."""
    lines = snippet.text.replace("\\\n", " ").splitlines()
    if snippet.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        try:
            for token in lexer:
                if token in SEPARATORS:
                    commands.append(words)
                    words = []
                else:
                    words.append(token)
        except ValueError as exc:
            raise DocError(f"{snippet.where}: cannot split {line!r}: {exc}") from None
        commands.append(words)
    return [words for words in commands if words]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_options(where: str, prog: str, parser: argparse.ArgumentParser, args: list[str]):
    """Sub-commands exist and every option is one of theirs, spelt out in full."""
    args = list(args)
    while (choices := subcommands(parser)) and args and not args[0].startswith("-"):
        name = args.pop(0)
        if name not in choices:
            raise DocError(
                f"{where}: `{prog}` has no sub-command {name!r} (it has {list(choices)})"
            )
        prog, parser = f"{prog} {name}", choices[name]
    known = {option for action in parser._actions for option in action.option_strings}
    for arg in args:
        option = arg.split("=", 1)[0]
        is_option = option.startswith("-") and option != "-" and not re.fullmatch(r"-\d.*", option)
        if is_option and option not in known:
            raise DocError(f"{where}: `{prog}` has no option {option} (it has {sorted(known)})")


def check_parses(where: str, prog: str, parser: argparse.ArgumentParser, args: list[str]):
    """``parser`` accepts ``args`` (argparse's own check: types, choices, required arguments)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        if exc.code:
            why = (err.getvalue().strip().splitlines() or ["refused"])[-1]
            raise DocError(f"{where}: `{prog} {shlex.join(args)}` is refused: {why}") from None


@functools.cache
def nas_parser() -> argparse.ArgumentParser:
    from nas.cli import build_parser

    return build_parser()


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@functools.cache
def benchmark_parser(script: str) -> argparse.ArgumentParser:
    """The argument parser of ``benchmarks/X.py``: its ``main()`` is called with argparse's
    parsing patched to stop at once, before anything is measured."""
    path = ROOT / script
    if not (path.is_file() and path.parent == ROOT / "benchmarks"):
        raise DocError(f"{script} does not exist (benchmarks are benchmarks/<name>.py)")
    name = f"_docs_benchmark_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)

    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Captured(self)

    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", capture),
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", capture),
        mock.patch.object(sys, "argv", [str(path)]),
    ):
        try:
            module.main()
        except _Captured as captured:
            return captured.parser
    raise DocError(f"{script}: main() returned without parsing arguments")


@functools.cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    names = re.findall(r"^([A-Za-z0-9_-][A-Za-z0-9_.-]*)\s*:(?!=)", text, flags=re.M)
    return frozenset(names)


def check_command(where: str, words: list[str], *, partial: bool = False) -> bool:
    """Check one command line without running it; False where it is not one of ours.

    ``partial``: a command quoted in prose, which may leave out required arguments; only its
    sub-commands and options are checked."""
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before the program
    if not words:
        return False
    program, args = words[0], words[1:]
    if program in PYTHONS and args[:2] == ["-m", "nas.cli"]:
        program, args = "nas", args[2:]
    if program in NAS:
        check_options(where, "nas", nas_parser(), args)
        if not partial:
            check_parses(where, "nas", nas_parser(), args)
    elif program in PYTHONS and args and args[0].startswith("benchmarks/"):
        try:
            parser = benchmark_parser(args[0])
        except DocError as exc:
            raise DocError(f"{where}: {exc}") from None
        check_options(where, args[0], parser, args[1:])
        if not partial:
            check_parses(where, args[0], parser, args[1:])
    elif program == "make":
        for arg in args:
            if "=" not in arg and not arg.startswith("-") and arg not in make_targets():
                raise DocError(f"{where}: the Makefile has no target {arg!r}")
    elif partial or program in OTHER_PROGRAMS:
        return False
    else:
        raise DocError(
            f"{where}: `{shlex.join(words)}`: {program!r} is not a command these tests check; "
            "check it in tests/test_docs.py or add it to OTHER_PROGRAMS"
        )
    return True


def check_shell(snippet: Snippet) -> int:
    """Check every command of a shell snippet; how many were ours (nas, benchmarks, make)."""
    return sum(check_command(snippet.where, words) for words in shell_commands(snippet))


# -- prose -----------------------------------------------------------------------------------


def check_span(where: str, text: str) -> None:
    """An inline code span: a command, a dotted name or a repository path, where it is one."""
    words = text.split()
    if words and (words[0] in NAS or words[0] in PYTHONS or words[0] == "make") and len(words) > 1:
        check_command(where, words, partial=True)
    elif re.fullmatch(rf"{DOTTED}(?:\(.*\))?", text) and "." in text.split("(")[0]:
        check_name(where, text.split("(")[0])
    elif (
        "/" in text
        and REPO_PATH.fullmatch(text)
        and not text.startswith("studies/runs/")  # what a run writes
        and not (ROOT / text).exists()
    ):
        raise DocError(f"{where}: {text} does not exist in the repository")


def documented_names(page: Page) -> list[tuple[str, str]]:
    """``(where, dotted name)``: the imports of the page's python snippets and the members
    listed after a module in its prose."""
    names = [
        (s.where, name) for s in page.snippets if s.lang == "python" for name in imported_names(s)
    ]
    for match in LISTED.finditer(page.prose):
        for member in re.findall(r"`(\w+)`", match[2]):
            names.append((page.where(match.start()), f"{match[1]}.{member}"))
    return names


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Page) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in page.prose.splitlines():
        if heading := HEADING.match(line):
            base = slug(heading[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def check_links(page: Page) -> int:
    """Relative links resolve to a file, fragments to a heading; how many were checked."""
    checked = 0
    for match in LINK.finditer(page.prose):
        target = match[1]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:
        checked += 1
        where = page.where(match.start())
        file, _, fragment = target.partition("#")
        path = (page.path.parent / file).resolve() if file else page.path
        if not path.exists():
            raise DocError(f"{where}: the link {target} points at nothing")
        if fragment and fragment not in anchors(parse_page(path)):
            raise DocError(f"{where}: the link {target}: no heading #{fragment} in {_rel(path)}")
    return checked


# -- the documentation's own snippets --------------------------------------------------------


def _snippets(*langs: str) -> list:
    return [pytest.param(s, id=s.where) for p in PAGES for s in page(p).snippets if s.lang in langs]


def _pages() -> list:
    return [pytest.param(p, id=_rel(p)) for p in PAGES]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A temporary folder in which ``benchmarks/`` and ``studies/`` are the repository's."""
    for name in ("benchmarks", "studies"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


@pytest.mark.parametrize("snippet", _snippets("python"))
def test_python_snippet_runs(snippet: Snippet, workdir: Path) -> None:
    run_python(snippet, workdir)


@pytest.mark.parametrize("snippet", _snippets("toml"))
def test_toml_snippet_is_a_valid_study_config(snippet: Snippet) -> None:
    check_toml(snippet)


@pytest.mark.parametrize("snippet", _snippets(*SHELL))
def test_shell_snippet_commands_parse(snippet: Snippet) -> None:
    assert shell_commands(snippet), f"{snippet.where}: a shell snippet without a command"
    check_shell(snippet)


@pytest.mark.parametrize("path", _pages())
def test_code_fences_name_a_checked_language(path: Path) -> None:
    for snippet in page(path).snippets:
        assert snippet.lang in LANGUAGES, (
            f"{snippet.where}: ```{snippet.lang} is not checked; use one of {sorted(LANGUAGES)}"
        )


@pytest.mark.parametrize("path", _pages())
def test_documented_names_import(path: Path) -> None:
    for where, name in documented_names(page(path)):
        check_name(where, name)


@pytest.mark.parametrize("path", _pages())
def test_inline_commands_names_and_paths(path: Path) -> None:
    for where, text in page(path).spans():
        check_span(where, text)


@pytest.mark.parametrize("path", _pages())
def test_relative_links_resolve(path: Path) -> None:
    check_links(page(path))


def test_readme_is_short_and_points_to_the_docs() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert "docs/README.md" in README.read_text()


def test_docs_index_lists_every_page() -> None:
    index = page(DOCS / "README.md")
    linked = {m[1].partition("#")[0] for m in LINK.finditer(index.prose)}
    for path in PAGES[1:]:
        if path.name != "README.md":
            assert path.name in linked, f"docs/README.md does not link to docs/{path.name}"


def test_readme_two_commands_come_first() -> None:
    """The README's first snippet is the two commands, and `make quickstart` runs the main job
    the README says it runs."""
    first = page(README).snippets[0]
    assert [words[:2] for words in shell_commands(first)] == [
        ["make", "quickstart"],
        ["make", "test"],
    ]
    recipe = re.search(r"^quickstart:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "nas search studies/quickstart.toml" in recipe[1]
    assert "`make quickstart` runs `nas search studies/quickstart.toml`" in README.read_text()


# -- the checks can fail ---------------------------------------------------------------------

BROKEN = ROOT / "docs" / "broken.md"


@pytest.mark.parametrize(
    ("lang", "text", "message"),
    [
        ("python", "1 / 0\n", "ZeroDivisionError"),
        ("python", "def f(:\n", "SyntaxError"),
        ("toml", '[search]\nstrategy = "bogus"\n', "search.strategy"),
        ("toml", "[search\n", "not valid TOML"),
        ("toml", "[no_such_section]\nx = 1\n", "no_such_section"),
        ("bash", "nas serch studies/quickstart.toml\n", "no sub-command 'serch'"),
        ("bash", "nas search studies/quickstart.toml --wokers 2\n", "no option --wokers"),
        ("bash", "nas search studies/quickstart.toml --worker 2\n", "no option --worker"),
        ("bash", "nas search\n", "is refused"),
        ("bash", "nas search studies/quickstart.toml --workers two\n", "is refused"),
        ("bash", "nas table build x.toml \\\n  --seeds 3 --bogus\n", "no option --bogus"),
        ("bash", "python benchmarks/blocks.py --no-such-flag\n", "no option --no-such-flag"),
        ("bash", "python benchmarks/no_such_benchmark.py\n", "does not exist"),
        ("bash", "make quickstart && make no-such-target\n", "no target 'no-such-target'"),
        ("bash", "rm -rf build  # never run\n", "'rm' is not a command"),
        ("console", "$ nas blocks --bogus\noutput\n", "no option --bogus"),
    ],
)
def test_a_broken_snippet_is_reported(lang: str, text: str, message: str, workdir: Path) -> None:
    snippet = parse_page(BROKEN, f"# x\n\n```{lang}\n{text}```\n").snippets[0]
    check = {"python": lambda s: run_python(s, workdir), "toml": check_toml}.get(lang, check_shell)
    with pytest.raises(DocError, match=re.escape(message)) as error:
        check(snippet)
    assert "docs/broken.md:3" in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("`nas export --no-such-flag`", "no option --no-such-flag"),
        ("`nas serch`", "no sub-command 'serch'"),
        ("`make no-such-target`", "no target"),
        ("`nas.data.NoSuchName`", "no 'NoSuchName'"),
        ("`nas.no_such_module.thing`", "no 'no_such_module'"),
        ("`benchmarks/results/no_such_file.md`", "does not exist"),
        ("`nas.stats` (`binomial_se`, `no_such_function`)", "no 'no_such_function'"),
        ("```python\nfrom nas.data import NoSuchName\n```", "no 'NoSuchName'"),
        ("[a page](no_such_page.md)", "points at nothing"),
        ("[a section](README.md#no-such-heading)", "no heading #no-such-heading"),
        ("a `backtick\n\nnever closed`", "never closed"),
        ("```python\nprint()\n", "never closed"),
    ],
)
def test_broken_prose_is_reported(text: str, message: str) -> None:
    with pytest.raises(DocError, match=re.escape(message)):
        doc = parse_page(BROKEN, text + "\n")
        for where, span in doc.spans():
            check_span(where, span)
        for where, name in documented_names(doc):
            check_name(where, name)
        check_links(doc)


def test_good_prose_passes() -> None:
    """The counterpart of the broken cases: the same checks accept what is right."""
    doc = parse_page(
        BROKEN,
        "`nas export --pareto` `make test` `nas.data.DataConfig` `nas.load(path)`\n"
        "`benchmarks/results/` `studies/runs/x/journal.log` `nas.stats` (`binomial_se`)\n"
        "[index](README.md#documentation) [the front](../README.md#the-two-commands)\n",
    )
    for where, span in doc.spans():
        check_span(where, span)
    for where, name in documented_names(doc):
        check_name(where, name)
    assert check_links(doc) == 2
