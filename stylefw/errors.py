"""User-facing errors: the CLI prints their message as one line, without a traceback."""


class StylefwError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""
