"""`python -m tests.bad_inputs [--write] [--only ID]`: run the bad-input cases (and rewrite their table)."""
import sys

from tests.bad_inputs import main

sys.exit(main())
