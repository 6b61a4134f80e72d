"""The common base of every error whose message is meant for the user: one line, no traceback.

Pages and command lines show a `UserError` as it is; anything else is a programming error,
logged with its traceback and shown as an internal error.
"""


class UserError(RuntimeError):
    """Something the user can act on (a bad file, option or input); the message is one line."""

    def __str__(self) -> str:
        text = super().__str__().strip()
        return text.splitlines()[0][:400] if text else type(self).__name__
