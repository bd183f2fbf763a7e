"""One error tree for everything prelabel raises on purpose.

::

    PrelabelError                 base: catch this to report a one-line message
    ├── SettingsError             missing or inconsistent settings
    ├── SourceError               an image source cannot be listed or read
    │   └── UntrustedSourceError  a request named an image prelabel will not read (another host, a path)
    ├── ImageError                an input image cannot be used (carries the file name)
    │   └── ImageTooLargeError    above the configured pixel limit (decompression bomb)
    ├── MaskError                 a mask or its encoding is invalid (COCO RLE, brush RLE, size)
    ├── LabelConfigError          a labeling config cannot serve the request
    ├── LabelMapError             a label-mapping file is malformed (carries the file name)
    ├── LabelStudioError          Label Studio refused a request (method, URL, status, its message)
    │   ├── LabelStudioUnavailableError   no useful answer after every retry (network, 429, 5xx)
    │   └── NotLabelStudioError   the server answered, but not as Label Studio's API (an HTML page)
    ├── AmbiguousWriteError       a write failed after it was sent: it may have been stored
    ├── LabelStudioStartError     the local Label Studio could not be installed or started
    ├── ProjectBusyError          another run held the project for longer than the run would wait
    ├── AllImagesFailedError      not one image of a run succeeded (each has its error row)
    ├── PredictionFileError       a raw prediction file is malformed or ambiguous (carries the file name)
    ├── DetectionError            an image's detections cannot be made sane (carries the image name)
    ├── AnnotationError           one annotation result cannot be exported (carries the image name)
    ├── DinoxError                the DINO-X API failed for one image (task failed, deadline, retries)
    │   └── DinoxAuthError        the API refused the token: the whole batch stops
    └── RefusedRequestError       a request to the ML backend cannot be served (carries its 4xx status)

Real bugs (TypeError, IndexError, ...) are never wrapped: they keep their traceback.
"""

from __future__ import annotations

__all__ = [
    "AllImagesFailedError",
    "AmbiguousWriteError",
    "AnnotationError",
    "DetectionError",
    "DinoxAuthError",
    "DinoxError",
    "ImageError",
    "ImageTooLargeError",
    "LabelConfigError",
    "LabelMapError",
    "LabelStudioError",
    "LabelStudioStartError",
    "LabelStudioUnavailableError",
    "MaskError",
    "NotLabelStudioError",
    "PredictionFileError",
    "PrelabelError",
    "ProjectBusyError",
    "RefusedRequestError",
    "SettingsError",
    "SourceError",
    "UntrustedSourceError",
]


class PrelabelError(Exception):
    """Base of every error prelabel raises on purpose."""


class SettingsError(PrelabelError):
    """A setting is missing or inconsistent."""


class SourceError(PrelabelError):
    """An image source (folder, bucket, URL list, ...) cannot be listed or read."""


class UntrustedSourceError(SourceError):
    """A request that came over the network named an image prelabel will not read: a URL on a
    host other than the configured Label Studio, a local path, another scheme."""


class _FileError(PrelabelError):
    """An error about one input file; the message always starts with its name."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


class ImageError(_FileError):
    """An image is empty, truncated, corrupt, not an image, or otherwise unusable."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than the configured limit (a decompression-bomb guard)."""


class MaskError(PrelabelError):
    """A mask, COCO RLE or brush RLE is malformed or does not fit its image."""


class LabelConfigError(PrelabelError):
    """A Label Studio labeling config is malformed or lacks what a request needs."""


class LabelMapError(_FileError):
    """A label-mapping file is malformed."""


class PredictionFileError(_FileError):
    """A raw prediction file (DINO-X shape) is malformed, missing, or not the only candidate."""


class DetectionError(_FileError):
    """A model's (or a raw file's) detections of one image hold what cannot be posted: a number
    that is not finite, a score outside [0, 1], a box with no area on the image."""


class AnnotationError(_FileError):
    """One annotation result pulled from Label Studio cannot be exported (malformed geometry)."""


class LabelStudioError(PrelabelError):
    """Label Studio refused a request: method, URL, status and an excerpt of its answer."""

    def __init__(self, method: str, url: str, status: int | None, detail: str) -> None:
        self.method, self.url, self.status, self.detail = method, url, status, detail
        where = f"{method} {url}"
        super().__init__(f"Label Studio {where} -> {status}: {detail}" if status else f"{where}: {detail}")


class LabelStudioUnavailableError(LabelStudioError):
    """Label Studio did not answer usefully after every retry (network, 429, 5xx)."""


class NotLabelStudioError(LabelStudioError):
    """The server answered, but not as Label Studio's API does: ``found`` says what came
    instead (an HTML page, text that is not JSON, JSON without a Label Studio version)."""

    def __init__(self, method: str, url: str, status: int | None, found: str) -> None:
        self.found = found
        super().__init__(method, url, status, f"answered {found}: not a Label Studio API")


class AmbiguousWriteError(PrelabelError):
    """A request that creates something failed after it was sent (a dropped connection, a
    proxy's 5xx, a timeout): the server may have stored it. Never repeated blindly; the
    caller re-reads the state and decides."""

    def __init__(self, method: str, url: str, detail: str) -> None:
        self.method, self.url, self.detail = method, url, detail
        super().__init__(
            f"{method} {url}: {detail} after the request was sent; it may have been stored, so it "
            "is not repeated (re-read the state before trying again)"
        )


class LabelStudioStartError(PrelabelError):
    """The local Label Studio could not be installed or started."""


class DinoxError(PrelabelError):
    """The DINO-X API failed for one image (a failed task, a deadline, retries exhausted)."""


class DinoxAuthError(DinoxError):
    """The DINO-X API refused the token: nothing in the batch can succeed."""


class ProjectBusyError(PrelabelError):
    """Another run held the project (posting to it) for longer than this run would wait."""


class AllImagesFailedError(PrelabelError):
    """Not one image of a run succeeded; each one's reason is in the run's errors file."""


class RefusedRequestError(PrelabelError):
    """A request to the ML backend (``prelabel serve``) cannot be served: ``status`` is the 4xx
    it is answered with, the message says why in one line."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)
