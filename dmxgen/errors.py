"""The one exception type for user-facing problems.

The CLI prints a DmxError as a single line and exits 2; anything else is a bug
and may show a traceback.
"""


class DmxError(Exception):
    """A problem with the user's input (file, model, option), not a bug."""
