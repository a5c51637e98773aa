"""User-facing errors and warnings: the CLI prints each as one line, without a traceback."""

from __future__ import annotations

import sys
import warnings
from typing import Any, TextIO


class StylefwError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class NonFiniteLossError(StylefwError):
    """A loss term became NaN or infinite during optimisation: the run stops and keeps its last good image."""

    def __init__(self, terms: list[str], step: int, kind: str) -> None:
        self.terms, self.step, self.kind = terms, step, kind
        names = ", ".join(f"'{term}'" for term in terms)
        super().__init__(f"loss term{'s' if len(terms) > 1 else ''} {names} became {kind} at step {step}")


class StylefwWarning(UserWarning):
    """Something the run works around (first frame of an animation, a much upscaled image), shown as one line."""


def warn(message: str) -> None:
    warnings.warn(message, StylefwWarning, stacklevel=2)


def show_warnings_as_one_line() -> None:
    """Print StylefwWarnings as ``stylefw: warning: ...`` instead of Python's two-line file:line format."""
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, StylefwWarning):
            print(f"stylefw: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def config_error_message(error: BaseException) -> str | None:
    """One or two lines for a Hydra/OmegaConf config error, or None when `error` is not one (a bug: show it)."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    cause = error.__cause__
    if isinstance(error, MissingConfigException):
        return _missing_option_message(error)
    if isinstance(error, OverrideParseException):
        return _unparsable_override_message(error)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and getattr(cause, "full_key", None):
        return _unknown_key_message(cause)
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        return _wrong_type_message(error, cause)
    if isinstance(error, (HydraException, OmegaConfBaseException)):
        detail = f": {_first_line(cause)}" if isinstance(cause, OmegaConfBaseException) else ""
        return f"{_first_line(error)}{detail}\n  (`stylefw --help` lists the config groups and keys)"
    return None


def _unparsable_override_message(error: Any) -> str:
    """Hydra's grammar refuses accents in unquoted values: show the quoted form to type."""
    override = str(getattr(error, "override", "") or "")
    key, equals, value = override.partition("=")
    if equals and not value.isascii() and '"' not in value:
        return (f"cannot parse '{override}': Hydra needs quotes around values with accents or other non-ASCII "
                f"characters: write '{key}=\"{value}\"' (the single quotes are for the shell)")
    return (f"cannot parse '{override}' ({_first_line(error).removeprefix('LexerNoViableAltException: ')}): "
            "quote values with special characters; see https://hydra.cc/docs/advanced/override_grammar/basic/")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def _missing_option_message(error: Any) -> str:
    """``backbone=resnet`` -> unknown backbone 'resnet', with the options of that group."""
    group, _, option = str(getattr(error, "missing_cfg_file", "") or "").rpartition("/")
    options = list(getattr(error, "options", None) or _group_options(group))
    if group and options:
        return f"unknown {group} '{option}': choose one of {', '.join(options)} (`stylefw --help` lists every plugin)"
    message = _first_line(error).removeprefix("In 'config': ")
    return f"{message} (`stylefw --help` lists every plugin)"


def _group_options(group: str) -> list[str]:
    if not group:
        return []
    try:
        from hydra.core.global_hydra import GlobalHydra

        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    except Exception:  # Hydra is not initialised: the message goes without the list
        return []


def _unknown_key_message(cause: Any) -> str:
    """``sise=256`` -> "unknown config key 'sise': did you mean size?" (Hydra itself suggests ``+sise=256``)."""
    import difflib

    parent, _, key = str(cause.full_key).rpartition(".")
    node = cause.parent_node
    known = [str(name) for name in node.keys() if name != "hydra"] if node is not None else []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    prefix = f"{parent}." if parent else ""
    hint = f": did you mean {prefix}{close[0]}?" if close else (f": {parent or 'the top level'} has {', '.join(known)}"
                                                                 if known else "")
    return (f"unknown config key '{cause.full_key}'{hint}\n"
            "  (`stylefw --cfg job` prints every key; a new key for your own plugin needs a leading +)")


_EXPECTED = {"IntegerNode": "a whole number", "FloatNode": "a number", "BooleanNode": "true or false",
             "StringNode": "a string"}


def _wrong_type_message(error: BaseException, cause: Any) -> str:
    """``size=abc`` -> "size=abc: Value 'abc' of type 'str' could not be converted to Integer: give a whole number"."""
    override = _first_line(error).removeprefix("Error merging override ")
    if "=" not in override:
        override = str(cause.full_key)
    node = cause.child_node
    expected = _EXPECTED.get(type(node).__name__)
    if expected and node is not None and node._is_optional():
        expected += " or null"
    return f"{override}: {_first_line(cause)}" + (f": give {expected}" if expected else "")
