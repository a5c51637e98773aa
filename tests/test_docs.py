"""Every `stylefw ...` command in the README and docs/ composes as written: no stale key, group or option."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"<[^<>]*>")  # outputs/<run>, <folder of photos>: any value composes
EXAMPLE_CONF = ROOT / "examples" / "mean_std_loss" / "stylefw_mean_std" / "conf"  # docs/losses.md's my_conf


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every line of a ```bash block that runs stylefw, continuation lines joined."""
    commands = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()  # a trailing comment
                if line.startswith("stylefw ") or line == "stylefw":
                    commands.append((page.name, line))
    return commands


COMMANDS = documented_commands()


def test_the_pages_show_commands() -> None:
    assert len(COMMANDS) > 30 and {page for page, _ in COMMANDS} >= {"README.md", "methods.md", "creative.md"}


def first_choice(override: str) -> str:
    """``key=a,b`` -> ``key=a``: the first job of a sweep (Hydra refuses --cfg with -m); lists stay whole."""
    key, equals, value = override.partition("=")
    depth, cut = 0, len(value)
    for index, char in enumerate(value):
        depth += 1 if char in "[{(" else -1 if char in "]})" else 0
        if char == "," and depth == 0:
            cut = index
            break
    return f"{key}{equals}{value[:cut]}"


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{page}:{command[:60]}" for page, command in COMMANDS])
def test_documented_command_composes(stylefw_cli, page: str, command: str) -> None:
    arguments = [PLACEHOLDER.sub("x", argument).replace("/path/to/my_conf", str(EXAMPLE_CONF))
                 for argument in shlex.split(command)[1:]]
    if "-m" in arguments:  # the sweep's first job
        arguments = [first_choice(argument) for argument in arguments if argument != "-m"]
    if any(argument in ("--help", "--cfg") for argument in arguments):
        result = stylefw_cli(*arguments, tiny=False)
    else:
        result = stylefw_cli(*arguments, "--cfg", "job", tiny=False)
    assert result.code == 0, f"{page}: {command}\n{result.stderr}"
    assert "error" not in result.stderr.lower(), result.stderr
