"""The one exception type users see: its message is one line that says what is wrong and how to fix it."""


class AttnvizError(Exception):
    """A problem with the user's input or environment; shown as one line, no traceback unless debug=true."""
