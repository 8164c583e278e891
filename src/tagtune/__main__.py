"""Allow ``python -m tagtune``."""

from tagtune.cli import main

if __name__ == "__main__":
    main()
