"""The one exception type users see: a plain message, printed on one line, exit code 2."""


class BenchbdError(Exception):
    """Bad input or an unmet precondition, explained in words a user can act on."""
