"""`python -m mssante`, the same as the `mssante` command."""

from mssante.cli import main

main()
