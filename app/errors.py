"""Errors a user can act on: each carries one sentence saying what is wrong and what to do."""

from __future__ import annotations


class ForgeError(Exception):
    """Base of every engine error. str(error) is the sentence shown to the user."""


class InputError(ForgeError):
    """The user's input (a path, an option, a combination) cannot be used as given."""


class CheckpointError(InputError):
    """A source checkpoint folder is missing, broken or unsupported."""


class HubError(InputError):
    """A Hugging Face Hub repo that cannot be read or downloaded (missing, gated, offline, no room)."""


class OutputError(InputError):
    """The output folder cannot be written as asked (not empty, inside the source, no room)."""


class PresetError(InputError):
    """A preset, execution provider or option that the builder does not accept."""


class ModelLoadError(ForgeError):
    """A converted model that cannot be loaded or run here."""


class JobFailed(ForgeError):
    """A worker job ended without a result."""
