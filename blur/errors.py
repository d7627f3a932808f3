"""Errors of the privacy engine. Messages are one sentence a technician can act on."""


class PrivacyError(Exception):
    """Base error of the privacy engine (`blur/`)."""


class ModelError(PrivacyError):
    """A model file is missing, damaged, or could not be provisioned."""
