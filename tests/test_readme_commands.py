"""The README's commands as a user copies them: every fenced shell command names scripts, subcommands and options
that exist, and the command table lists exactly the `nnprog` subcommands there are (with options that exist)."""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest

from nnunet_progressive.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NNUNET_COMMANDS = ("nnUNetv2_train", "nnUNetv2_predict", "nnUNetv2_plan_and_preprocess")


def fenced_shell_commands(markdown: str) -> list[list[str]]:
    """The commands of every ```bash block: comments and leading VAR=value assignments dropped, one per line."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            part: list[str] = []
            for word in shlex.split(line, comments=True) + ["&&"]:
                if word != "&&":
                    part.append(word)
                    continue
                while part and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", part[0]):
                    part = part[1:]
                if part:
                    commands.append(part)
                part = []
    return commands


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def nnprog_parser_for(words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)parser that ``nnprog WORDS`` reaches, and the words left for it."""
    parser = build_parser()
    while words and words[0] in subcommands(parser):
        parser, words = subcommands(parser)[words[0]], words[1:]
    return parser, words


@cache
def nnunet_options(command: str) -> frozenset[str]:
    """The options nnU-Net's command accepts, read from its own --help."""
    text = subprocess.run([command, "-h"], capture_output=True, text=True, timeout=300).stdout
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


def options_in(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if re.match(r"--?[A-Za-z]", w)]


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_every_fenced_command_exists_with_its_options(page):
    commands = fenced_shell_commands(page.read_text())
    checked = set()
    for words in commands:
        program = words[0]
        if program == "bash":
            assert (ROOT / words[1]).is_file(), words
        elif program == "nnprog":
            parser, rest = nnprog_parser_for(words[1:])
            assert parser.prog != "nnprog", f"no such nnprog subcommand: {words}"
            unknown = set(options_in(rest)) - option_strings(parser)
            assert not unknown, f"{' '.join(words)}: {parser.prog} has no option {sorted(unknown)}"
        elif program in NNUNET_COMMANDS:
            unknown = set(options_in(words[1:])) - nnunet_options(program)
            assert not unknown, f"{' '.join(words)}: {program} has no option {sorted(unknown)}"
        elif program in ("source", "export", "eval", "pip", "python"):
            continue
        else:
            pytest.fail(f"{page.name} runs a command this test does not know: {words}")
        checked.add(program)
    if page.name == "README.md":
        assert len(commands) >= 12 and {"bash", "nnprog", "nnUNetv2_train", "nnUNetv2_predict"} <= checked


def test_fenced_commands_are_read_as_a_shell_would():
    text = "```bash\nA=1 B=2 nnprog demo --epochs 9   # a comment\nbash x.sh && nnprog \\\n  env\n```\n"
    assert fenced_shell_commands(text) == [["nnprog", "demo", "--epochs", "9"], ["bash", "x.sh"], ["nnprog", "env"]]
    assert options_in(["-d", "4", "--plot=x.png", "-1", "IN"]) == ["-d", "--plot"]


def command_table_rows() -> list[str]:
    section = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `nnprog")]


def test_the_command_table_lists_every_nnprog_subcommand_with_options_that_exist():
    rows = command_table_rows()
    top = subcommands(build_parser())
    cells: dict[str, str] = {}
    for row in rows:
        cell = row.split("|")[1]
        spans = re.findall(r"`([^`]*)`", cell)
        words = spans[0].replace("[", " ").replace("]", " ").split()
        parser, rest = nnprog_parser_for(words[1:])
        assert parser.prog != "nnprog", f"the README's command table names no real subcommand: {row}"
        name = parser.prog.split()[1]
        cells[name] = cells.get(name, "") + cell
        unknown = set(options_in(rest)) - option_strings(parser)
        assert not unknown, f"{spans[0]}: {parser.prog} has no option {sorted(unknown)}"
    assert set(cells) == set(top), f"commands missing from the README table: {sorted(set(top) - set(cells))}"
    for name, cell in cells.items():
        for nested in subcommands(top[name]):  # e.g. `benchmark run` / `report`: each named in a row of its own
            assert re.search(rf"`(nnprog {name} )?{nested}\b", cell), f"`nnprog {name} {nested}` is not in the table"


def every_parser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [parser] + [p for sub in subcommands(parser).values() for p in every_parser(sub)]


def test_every_help_text_fits_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for parser in every_parser(build_parser()):
        too_wide = [line for line in parser.format_help().splitlines() if len(line) > 100]
        assert not too_wide, f"`{parser.prog} --help` has lines wider than a terminal: {too_wide[:2]}"


def test_help_texts_name_what_the_code_writes():
    from nnunet_progressive.core.records import ranking_file_name
    from nnunet_progressive.pdl.similarity.compare import DEFAULT_GRID_SIZE

    rank = " ".join(nnprog_parser_for(["rank"])[0].format_help().split())
    assert ranking_file_name("<DATA_IDENTIFIER>", "<F>") in rank and f"at most {DEFAULT_GRID_SIZE} voxels" in rank
    assert "grid_shape and grid_spacing" in rank and "into $nnUNet_preprocessed/DatasetXXX_Name/" in rank
    env = " ".join(nnprog_parser_for(["env"])[0].format_help().split())
    assert "export nnUNet_extTrainer=" in env and "PYTHONPATH" in env  # both lines `nnprog env` can print


def test_the_setup_scripts_set_no_nnprog_variable():
    """The scripts' variables reach every training the test suite or the demo starts, and the trainers refuse
    ``NNPROG_*`` names that are no knob (and near misses of the prefix)."""
    for script in (ROOT / "scripts").glob("*.sh"):
        names = re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)=", script.read_text())
        bad = [n for n in names if n.upper().replace("_", "").startswith("NNPROG")]
        assert not bad, f"{script.name} sets {bad}"
