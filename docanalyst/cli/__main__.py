"""``python -m docanalyst.cli``: the console script, for tests and benchmarks that run it with a given Python."""

from docanalyst.cli import main

if __name__ == "__main__":
    main()
