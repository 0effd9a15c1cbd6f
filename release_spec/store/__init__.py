"""The versioned model store: sealed manifests, a production pointer, backup and restore.

Imports the standard library (and Keras only inside the functions that load or
save a model); nothing else of the package. One module a concern:

- `registry`: `ModelStore` itself, and the on-disk layout it keeps;
- `verify`: checking every version's files against its manifest;
- `pointer`: the production pointer and its history;
- `files`: atomic writes and opening store paths without following links;
- `sealed`: JSON metadata that carries a checksum of its own content;
- `lock`: the writer lock;
- `keras_files`: refusing model files that could run code, reproducible saves;
- `backup`: writing and checking ``.tar.gz`` archives of a store;
- `layout`: names and formats shared by all of them; `errors`: the exceptions.
"""

from release_spec.store.errors import (
    CorruptFileError,
    IntegrityError,
    StaleLockWarning,
    StoreError,
    StoreLockedError,
    StoreWriteError,
    UnsafeModelError,
)
from release_spec.store.files import atomic_write
from release_spec.store.keras_files import check_model_file, reproducible_keras, safe_load_model
from release_spec.store.lock import LockHolder
from release_spec.store.registry import ModelStore, VersionInfo
from release_spec.store.verify import VerifyReport

__all__ = [
    "CorruptFileError",
    "IntegrityError",
    "LockHolder",
    "ModelStore",
    "StaleLockWarning",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "UnsafeModelError",
    "VerifyReport",
    "VersionInfo",
    "atomic_write",
    "check_model_file",
    "reproducible_keras",
    "safe_load_model",
]
