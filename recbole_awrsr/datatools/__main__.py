"""``python -m recbole_awrsr.datatools convert|download|stats ...``: see :mod:`recbole_awrsr.datatools.cli`."""

import sys

from recbole_awrsr.datatools.cli import main

if __name__ == "__main__":
    sys.exit(main())
