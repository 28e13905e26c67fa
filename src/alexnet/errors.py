"""Errors a user can cause, reported by the CLI as one sentence and a non-zero exit."""


class UserError(Exception):
    """A mistake in what the user asked for (bad path, unknown name, wrong shape...).

    The message is one sentence that names the offending file or value; the CLI prints it
    without a traceback and exits with `exit_code`.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(value: object, valid) -> str:
    """" (did you mean epochs?)" when `value` is close to one of `valid`, else ""."""
    import difflib

    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def one_of(kind: str, value: object, valid) -> UserError:
    """The standard 'unknown X' error, listing the valid choices (the closest one first)."""
    choices = ", ".join(str(v) for v in valid)
    return UserError(f"unknown {kind} {value!r}{did_you_mean(value, valid)}; valid {kind}s: "
                     f"{choices}")
