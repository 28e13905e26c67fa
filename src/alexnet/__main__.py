"""`python -m alexnet` runs the command line (also what torchrun launches)."""

from alexnet.cli import main

raise SystemExit(main())
