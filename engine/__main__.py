"""``python -m engine``: the same command line as the ``fentan`` script."""

from engine.cli.main import main

if __name__ == "__main__":
    main()
