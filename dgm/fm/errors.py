"""What can go wrong with a foundation-model call, in terms a run can act on."""


class FMError(Exception):
    """An FM call failed; the message is one line saying what to do."""


class FMAuthError(FMError):
    """The provider refused the key."""


class BudgetExceeded(FMError):
    """The gateway refused the call: the unit's or the run's budget is spent."""


class ContextOverflow(FMError):
    """The conversation no longer fits the model's context window."""


class FMUnavailable(FMError):
    """Rate limits, server errors or timeouts outlasted the retries."""


class FMFormatError(FMError):
    """The model answered, but not in the form asked for."""
