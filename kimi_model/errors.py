"""Typed errors with stable machine-readable codes.

The codes are part of the public API: the job service copies them into
``error.code`` of a failed job and into 4xx responses, so never rename one.
``permanent`` tells the worker not to retry.
"""
from __future__ import annotations


class KimiError(Exception):
    code = "internal_error"
    permanent = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class CheckpointError(KimiError):
    """The model or speech-tokenizer directory is missing a file or is inconsistent."""
    code = "checkpoint_invalid"
    permanent = True


class AudioError(KimiError):
    """Base for problems with the user's audio; never worth a retry."""
    code = "audio_invalid"
    permanent = True


class EmptyAudioError(AudioError):
    code = "audio_empty"


class UnsupportedAudioFormatError(AudioError):
    code = "audio_unsupported_format"


class AudioDecodeError(AudioError):
    """Corrupt or non-audio bytes."""
    code = "audio_undecodable"


class AudioTooLongError(AudioError):
    code = "audio_too_long"


class RequestTooLongError(KimiError):
    """Prompt plus requested output does not fit the model's context."""
    code = "request_too_long"
    permanent = True


class InvalidRequestError(KimiError):
    code = "invalid_request"
    permanent = True
