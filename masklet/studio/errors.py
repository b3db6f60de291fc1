"""Errors the studio reports to the browser: each carries the HTTP status it maps to."""

from __future__ import annotations


class StudioError(ValueError):
    """Bad input (400); the message says what to do."""

    status = 400


class NotFound(StudioError):
    status = 404


class Conflict(StudioError):
    """The request clashes with the current state (409), e.g. prompting while that video tracks."""

    status = 409


class TooLarge(StudioError):
    status = 413
