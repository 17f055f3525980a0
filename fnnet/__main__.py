"""`python -m fnnet COMMAND ...`: the same as the `fnnet` console command."""
import sys

from fnnet.cli import main

sys.exit(main())
