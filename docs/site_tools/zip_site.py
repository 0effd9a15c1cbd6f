"""Zip a built site into one archive: ``python docs/site_tools/zip_site.py SITE_DIR ZIP``.

``nox -s offline`` zips the offline copy (mkdocs-offline.yml) with it. Every file goes
under one folder, ``release-spec/``, so unzipping makes one folder whose
``index.html`` (English) and ``zh/index.html`` (Chinese) open in a browser.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

FOLDER = "release-spec"


def zip_site(site: Path, out: Path) -> Path:
    """Write every file below ``site`` into ``out`` under ``release-spec/``, in sorted order."""
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no built site (no index.html)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in site.rglob("*") if p.is_file()):
            archive.write(path, f"{FOLDER}/{path.relative_to(site).as_posix()}")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[0])
    print(zip_site(Path(sys.argv[1]), Path(sys.argv[2])))
