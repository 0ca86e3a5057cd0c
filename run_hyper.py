"""Hyperparameter search on Ray Tune: ``python run_hyper.py --model=M --dataset=D --params_file=F``.

The same as ``recbole-awrsr tune ...``; see :mod:`recbole_awrsr.tune` for the options.
"""

import sys

from recbole_awrsr.tune import main

if __name__ == "__main__":
    sys.exit(main())
