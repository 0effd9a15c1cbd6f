"""The versioned model store: sealed manifests, a production pointer, backup and restore.

Imports the standard library (and Keras only inside the functions that load a
model); nothing else of the package.
"""

from release_spec.store.registry import (
    CorruptFileError,
    IntegrityError,
    LockHolder,
    ModelStore,
    StaleLockWarning,
    StoreError,
    StoreLockedError,
    StoreWriteError,
    UnsafeModelError,
    VerifyReport,
    VersionInfo,
    atomic_write,
    check_model_file,
    reproducible_keras,
    safe_load_model,
)

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
