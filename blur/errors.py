"""Errors of the privacy engine. Messages are one sentence a technician can act on."""

from classcap.errors import ClasscapError


class PrivacyError(ClasscapError):
    """Base error of the privacy engine (`blur/`)."""


class ModelError(PrivacyError):
    """A model file is missing, damaged, or could not be provisioned."""


class ModelMissing(ModelError, FileNotFoundError):
    """A model file was never provisioned on this machine (`make setup` fetches it)."""
