"""netcheck's own input errors: bad input refused at a public boundary.

Every check that refuses what a user passed raises one of these. They are ``ValueError`` and
``TypeError`` subclasses, so ``except ValueError`` and ``pytest.raises(ValueError)`` keep
working; the common base :class:`InputError` lets the command line tell a user's mistake
(exit 2, one line) from a bug in netcheck (exit 1, with the traceback).
"""


class InputError(Exception):
    """Marks an error as bad input to netcheck, refused at its public boundary."""


class InputValueError(InputError, ValueError):
    """A value netcheck cannot take: a wrong shape, an unknown name, NaN data, ..."""


class InputTypeError(InputError, TypeError):
    """An argument of a type netcheck cannot take: a tuple where a list is needed, ..."""
