"""``python -m release_spec``: the ``release-spec`` command line."""

import sys

from release_spec.cli import main

if __name__ == "__main__":
    sys.exit(main())
