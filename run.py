"""attnviz: ``python run.py [key=value ...] [-m]`` (see README.md and conf/)."""

from attnviz.app import main

if __name__ == "__main__":
    main()
