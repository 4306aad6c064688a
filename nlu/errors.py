"""NLU backend failures. The router treats every :class:`NluBackendError` as "use the fallback"."""

from __future__ import annotations


class NluError(Exception):
    """Base class of NLU errors."""


class NluBackendError(NluError):
    """A backend could not produce a parse for this message."""

    reason = "error"
    """Short machine-readable reason, used as the fallback metrics label."""


class RasaUnavailableError(NluBackendError):
    """Rasa could not be reached (connection refused/reset, DNS)."""

    reason = "unavailable"


class RasaTimeoutError(NluBackendError):
    """Rasa did not answer in time."""

    reason = "timeout"


class RasaHTTPError(NluBackendError):
    """Rasa answered with an HTTP error status."""

    reason = "http_error"

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def transient(self) -> bool:
        """5xx overload/gateway errors and 429 may succeed on retry; 4xx will not."""
        return self.status_code in (429, 500, 502, 503, 504)


class RasaResponseError(NluBackendError):
    """Rasa answered 200 but the body is not a valid parse (malformed JSON or schema)."""

    reason = "malformed_response"


class CircuitOpenError(NluBackendError):
    """The circuit breaker is open: Rasa failed repeatedly and is not called for a while."""

    reason = "circuit_open"


class RasaServiceError(NluError):
    """Managing the Rasa process failed (setup, training, serving); the message says why."""
