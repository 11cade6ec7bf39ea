"""``python -m nlmr`` is the same as the ``nlmr`` console script."""

from nlmr.cli import main

if __name__ == "__main__":
    main()
