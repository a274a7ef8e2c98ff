from __future__ import annotations

from guardstream.cli import main

if __name__ == "__main__":
    main()
