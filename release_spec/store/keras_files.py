"""Keras-file safety: refuse model files that could run code, and make saves reproducible.

Only the Keras v3 ``.keras`` format is accepted: HDF5, pickle/joblib and
TensorFlow SavedModel inputs are refused, and so is any model whose
configuration contains a ``Lambda`` layer or an object from outside Keras
(`check_model_file`, without importing Keras). `reproducible_keras` rewrites
the zip Keras writes so that the same weights give the same bytes: Keras
records the save time and the memory addresses of shared objects, which
would make every save a "new" version.

Keras is imported only inside `safe_load_model` (and
`release_spec.store.registry.ModelStore.save_model`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from release_spec.store.errors import StoreError, UnsafeModelError
from release_spec.store.files import _CHUNK

__all__ = [
    "MAX_KERAS_JSON_BYTES",
    "MIN_KERAS_VERSION",
    "check_model_file",
    "reproducible_keras",
    "safe_load_model",
]

#: Loading refuses older Keras: before 3.11.3 ``safe_mode`` could be bypassed.
MIN_KERAS_VERSION = (3, 11, 3)
#: Largest ``config.json``/``metadata.json`` read from a ``.keras`` zip, in bytes.
MAX_KERAS_JSON_BYTES = 64 << 20
# Fixed values for what Keras writes differently on every save (see reproducible_keras).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FIXED_DATE_SAVED = "1980-01-01@00:00:00"
# Members a Keras v3 zip may hold; anything else is refused rather than guessed at.
_KERAS_MEMBERS = frozenset(
    {"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"}
)
# Layers that execute code or load foreign graphs on deserialisation.
_FORBIDDEN_CLASSES = {
    "Lambda": ("a Lambda layer", "runs arbitrary Python code"),
    "__lambda__": ("a serialised Python lambda", "runs arbitrary Python code"),
    "TFSMLayer": ("a TFSMLayer", "loads a TensorFlow SavedModel"),
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _parse_version(text: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise StoreError(f"cannot parse Keras version {text!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def _refuse_format(path: Path) -> None:
    """Raise naming the format when ``path`` is not a Keras v3 zip."""
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise UnsafeModelError(f"{path}: TensorFlow SavedModel directories are refused")
        raise UnsafeModelError(f"{path}: a directory is not a .keras model file")
    if not path.exists():
        raise UnsafeModelError(f"{path}: no such model file")
    if not path.is_file():
        raise UnsafeModelError(f"{path}: not a regular file (refused)")
    suffix = path.suffix.lower()
    named = {
        ".h5": "HDF5 (.h5)",
        ".hdf5": "HDF5 (.hdf5)",
        ".pkl": "pickle (.pkl)",
        ".pickle": "pickle (.pickle)",
        ".joblib": "joblib (.joblib)",
        ".pb": "TensorFlow SavedModel (.pb)",
    }
    if suffix in named:
        raise UnsafeModelError(f"{path}: {named[suffix]} format is refused; save as .keras")


def _open_model_file(path: Path) -> BinaryIO:
    """Open a caller's model file for reading; a FIFO or device swapped in is refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeModelError(f"{path}: not a regular file (refused)")
    return os.fdopen(fd, "rb")


def _check_model_content(path: Path, f: BinaryIO) -> str:
    """The checks of `check_model_file` on the bytes of an open file (``path`` names it)."""
    head = f.read(8)
    f.seek(0)
    # Content wins over the name: a pickle renamed to .keras is still a pickle.
    if head.startswith(_HDF5_MAGIC):
        raise UnsafeModelError(f"{path}: HDF5 content is refused; save as .keras")
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        raise UnsafeModelError(f"{path}: pickle content is refused; save as .keras")
    if path.suffix.lower() != ".keras":
        raise UnsafeModelError(f"{path}: unsupported model format {path.suffix or '(none)'!r}")
    if not zipfile.is_zipfile(f):
        raise UnsafeModelError(f"{path}: not a Keras v3 .keras zip archive")
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            names = zf.namelist()
            odd = [n for n in names if n not in _KERAS_MEMBERS and not n.startswith("assets/")]
            bad = [n for n in names if n.startswith("/") or ".." in n.split("/")]
            if odd or bad:
                raise UnsafeModelError(f"{path}: unexpected members in .keras archive: {odd + bad}")
            if "config.json" not in names or "metadata.json" not in names:
                raise UnsafeModelError(f"{path}: .keras archive lacks config.json/metadata.json")
            for name in ("config.json", "metadata.json"):
                size = zf.getinfo(name).file_size
                if size > MAX_KERAS_JSON_BYTES:
                    raise UnsafeModelError(
                        f"{path}: {name} declares {size} bytes, over the "
                        f"{MAX_KERAS_JSON_BYTES}-byte limit"
                    )
            config = json.loads(zf.read("config.json"))
            metadata = json.loads(zf.read("metadata.json"))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UnsafeModelError(f"{path}: unreadable .keras archive: {exc}") from None
    except RecursionError:
        raise UnsafeModelError(f"{path}: config.json is nested too deeply") from None
    found = _forbidden_in_config(config)
    if found:
        raise UnsafeModelError(f"{path}: refused, the model contains " + "; ".join(found))
    keras_version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    if not isinstance(keras_version, str):
        raise UnsafeModelError(f"{path}: metadata.json has no keras_version")
    return keras_version


def _forbidden_in_config(node: Any, where: str = "config") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        cls = node.get("class_name")
        if isinstance(cls, str) and cls in _FORBIDDEN_CLASSES:
            what, why = _FORBIDDEN_CLASSES[cls]
            config = node.get("config")
            name = config.get("name") if isinstance(config, dict) else None
            label = f"{what} {name!r}" if isinstance(name, str) else what
            found.append(f"{label} ({why}) at {where}")
        module = node.get("module")
        foreign = isinstance(module, str) and not (module == "keras" or module.startswith("keras."))
        if isinstance(cls, str) and foreign:
            found.append(f"object {cls!r} from module {module!r} (not Keras) at {where}")
        for key, value in node.items():
            found.extend(_forbidden_in_config(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_forbidden_in_config(value, f"{where}[{i}]"))
    return found


def check_model_file(path: Path | str) -> str:
    """Refuse anything but a plain Keras v3 ``.keras`` zip, without importing Keras.

    Checks the format by name and content (HDF5, pickle/joblib and SavedModel
    are refused, naming the format), the zip's member names, and the
    ``config.json`` for ``Lambda``/``TFSMLayer`` layers, serialised lambdas
    and objects from modules outside Keras. Nothing in the file is executed.

    Args:
        path: The model file.

    Returns:
        The Keras version recorded in the file's ``metadata.json``.

    Raises:
        UnsafeModelError: The format is refused or the config would run code.
    """
    path = Path(path)
    _refuse_format(path)
    with _open_model_file(path) as f:
        return _check_model_content(path, f)


def safe_load_model(path: Path | str) -> Any:
    """Load a ``.keras`` file after `check_model_file`, with ``safe_mode=True``.

    Keras is imported here, and only here and in `ModelStore.save_model`.
    Keras older than `MIN_KERAS_VERSION` is refused. Prefer
    `ModelStore.load_model`, which also checks every sha256 first.

    Raises:
        UnsafeModelError: The file is refused (see `check_model_file`).
        StoreError: The installed Keras is too old.
    """
    path = Path(path)
    check_model_file(path)
    import keras

    installed = _parse_version(keras.__version__)
    if installed < MIN_KERAS_VERSION:
        minimum = ".".join(map(str, MIN_KERAS_VERSION))
        raise StoreError(f"Keras {keras.__version__} is too old to load safely; need >= {minimum}")
    return keras.saving.load_model(path, safe_mode=True)


def _renumber_shared_objects(node: Any, numbers: dict[Any, int]) -> None:
    """Replace Keras's ``shared_object_id`` values (memory addresses) by 1, 2, ... in order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "shared_object_id" and isinstance(value, int):
                node[key] = numbers.setdefault(value, len(numbers) + 1)
            else:
                _renumber_shared_objects(value, numbers)
    elif isinstance(node, list):
        for value in node:
            _renumber_shared_objects(value, numbers)


def reproducible_keras(src: Path | str, dst: Path | str) -> None:
    """Rewrite a ``.keras`` zip so that the same model always gives the same bytes.

    Keras writes three things that change from one save to the next although
    the model does not: the save time (``date_saved`` in ``metadata.json``),
    the zip entries' timestamps, and ``shared_object_id`` values in
    ``config.json``, which are memory addresses (``id()``). This writes the
    members in name order, uncompressed (no dependence on the zlib version),
    dated 1980-01-01, with ``date_saved`` fixed to ``1980-01-01@00:00:00`` and
    the shared-object ids numbered 1, 2, ... in order of first appearance (the
    links between shared objects are kept). The weights file is copied
    unchanged: h5py records no object timestamps by default, so equal weights
    already give equal bytes. The result is a normal Keras v3 file.

    Args:
        src: A ``.keras`` file written by Keras.
        dst: The new file (must not exist).

    Raises:
        UnsafeModelError: ``src`` is not a Keras v3 zip (see `check_model_file`).

    Examples:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> for name, stamp in (("a", "2026-01-01@10:00:00"), ("b", "2026-06-30@23:59:59")):
        ...     with zipfile.ZipFile(tmp / f"{name}.keras", "w") as z:
        ...         z.writestr("config.json", '{"shared_object_id": ' + str(id(name)) + "}")
        ...         meta = {"keras_version": "3.15.1", "date_saved": stamp}
        ...         z.writestr("metadata.json", json.dumps(meta))
        ...     reproducible_keras(tmp / f"{name}.keras", tmp / f"{name}-fixed.keras")
        >>> (tmp / "a-fixed.keras").read_bytes() == (tmp / "b-fixed.keras").read_bytes()
        True
        >>> shutil.rmtree(tmp)
    """
    src, dst = Path(src), Path(dst)
    check_model_file(src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "x") as zout:
        for name in sorted(zin.namelist()):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, whatever the platform
            info.external_attr = 0o644 << 16
            if name in ("config.json", "metadata.json"):
                data = json.loads(zin.read(name))
                if name == "config.json":
                    _renumber_shared_objects(data, {})
                elif isinstance(data, dict) and "date_saved" in data:
                    data["date_saved"] = _FIXED_DATE_SAVED
                zout.writestr(info, json.dumps(data).encode())
                continue
            info.file_size = zin.getinfo(name).file_size
            with zin.open(name) as fin, zout.open(info, "w") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
