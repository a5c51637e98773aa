"""User-facing errors and warnings (the CLI prints each as one line, without a traceback), and the range checks
every plugin and the run use to raise them: each names the key, the value and the fix."""

from __future__ import annotations

import math
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


def build(node: Any, what: str, **kwargs: Any) -> Any:
    """The plugin a config node describes (Hydra's instantiate), with its errors as one line naming `what`."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, StylefwError):
            raise error.__cause__ from None
        raise StylefwError(f"{what} could not be built: {' '.join(str(error).split())}") from error


# --------------------------------------------------------------------------- range checks


def _fix(hint: str) -> str:
    return f" ({hint})" if hint else ""


def check_whole_number(key: str, value: Any, least: int = 1, *, optional: bool = False, hint: str = "") -> int | None:
    """`value` if it is a whole number of at least `least` (or None when `optional`); else a StylefwError
    ``key=value must be a whole number of at least N`` (``a positive whole number`` for N = 1)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a positive whole number" if least == 1 else f"a whole number of at least {least}"
        raise StylefwError(f"{key}={value} must be {what}{', or null' if optional else ''}{_fix(hint)}")
    return value


def check_number(key: str, value: Any, *, least: float | None = None, above: float | None = None,
                 below: float | None = None, at_most: float | None = None, optional: bool = False,
                 hint: str = "") -> float | None:
    """`value` as a float if it is a finite number within the bounds given (``least <=``, ``above <``, ``< below``,
    ``<= at_most``; or None when `optional`); else a StylefwError naming the key, the value and the range."""
    if value is None and optional:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or (least is not None and value < least) or (above is not None and value <= above) \
            or (below is not None and value >= below) or (at_most is not None and value > at_most):
        raise StylefwError(f"{key}={value} must be {_range(least, above, below, at_most)}"
                           f"{', or null' if optional else ''}{_fix(hint)}")
    return float(value)


def _range(least: float | None, above: float | None, below: float | None, at_most: float | None) -> str:
    low = f"[{least:g}" if least is not None else f"({above:g}" if above is not None else None
    high = f"{below:g})" if below is not None else f"{at_most:g}]" if at_most is not None else None
    if low and high:
        return f"a number in {low}, {high}"
    if above == 0 and not high:
        return "a positive number"
    if low:
        return f"a number {'>=' if least is not None else '>'} {least if least is not None else above:g}"
    if high:
        return f"a number {'<' if below is not None else '<='} {below if below is not None else at_most:g}"
    return "a finite number"


def check_choice(key: str, value: Any, choices: tuple[str, ...], hint: str = "") -> str:
    """`value` if it is one of `choices`, else a StylefwError listing them."""
    if value not in choices:
        raise StylefwError(f"{key}={value} is not one of {', '.join(choices)}{_fix(hint)}")
    return str(value)


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
    # Keys Hydra reads (_target_, _partial_) are not the user's to set.
    known = [str(name) for name in node.keys() if name != "hydra" and not str(name).startswith("_")] \
        if node is not None else []
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
