"""Split-MNIST-1D: the procedural 1-D digits (package mnist1d), 5 tasks of 2 classes.

  python -m scripts.run --config=research/configs/split_mnist1d.py --workdir=runs/mnist1d
"""

from research.configs import common


def get_config():
    config = common.base()
    config.dataset = "split_mnist1d"
    config.scenario = "class"
    config.num_tasks = 5
    return config
