"""``python -m prelabel_cli.reference [FOLDER]``: write the generated reference pages."""

from __future__ import annotations

import sys
from pathlib import Path

from prelabel_cli.reference import FOLDER, write_pages

if __name__ == "__main__":
    for path in write_pages(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(f"wrote {path}")
