"""Names and formats of the store's on-disk layout (drawn in `release_spec.store.registry`)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

FORMAT_VERSION = 1
MODEL_NAME = "model.keras"
MANIFEST_NAME = "manifest.json"
POINTER_NAME = "production.json"
MARKER_NAME = "store.json"
LOCK_NAME = ".lock"
VERSIONS_DIR = "versions"
INCOMING_PREFIX = ".incoming-"
_STORE_FORMAT = "release-spec-model-store"
_MANIFEST_FORMAT = "release-spec-model-manifest"
_POINTER_FORMAT = "release-spec-production-pointer"
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# A manifest entry: one plain name inside its version directory, never a path.
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# ASCII digits only: int() also reads other scripts' digits ("v١٢٣" is 123).
_AUTO_VERSION_RE = re.compile(r"v([0-9]+)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _check_version_name(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise ValueError(
            f"invalid version name {version!r}: use letters, digits, '.', '_', '+', '-' "
            "(at most 128 characters, not starting with a dot or dash)"
        )
    return version
