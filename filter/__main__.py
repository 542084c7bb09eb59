"""`python -m filter` runs the vtx command line."""

from filter.cli import main

main()
