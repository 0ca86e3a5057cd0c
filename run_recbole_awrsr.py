"""Train and test a model: ``python run_recbole_awrsr.py --model=SASRecAWR --dataset=ml-100k``.

Same as the ``recbole-awrsr`` console script; see ``recbole_awrsr/cli.py``.
"""

import sys

from recbole_awrsr.cli import main

if __name__ == "__main__":
    sys.exit(main())
