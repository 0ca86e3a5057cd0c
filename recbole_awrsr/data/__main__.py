"""``python -m recbole_awrsr.data convert|download|stats ...``, the documented spelling.

The tools themselves live in :mod:`recbole_awrsr.datatools` so that this package stays
what a checkpoint load needs; this module only hands the command line over.
"""

import sys

from recbole_awrsr.datatools.cli import main

if __name__ == "__main__":
    sys.exit(main())
