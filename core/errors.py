"""The one exception type user-facing code turns into a clear message (no traceback)."""


class UserError(Exception):
    """Bad input the user can fix: a missing folder, a wrong model file, an invalid option.

    The CLI prints ``error: <message>`` and exits with status 2; the GUI shows the message.
    """
