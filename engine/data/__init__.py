"""Data in: the data contract, reading files, validation, shipped reference bases, model artefacts."""

from engine.data.io import read_claims, read_members
from engine.data.persist import fingerprint, load_model, save_model
from engine.data.reference import reference_basis
from engine.data.validation import ValidationResult, validate

__all__ = [
    "ValidationResult",
    "fingerprint",
    "load_model",
    "read_claims",
    "read_members",
    "reference_basis",
    "save_model",
    "validate",
]
