"""Split-Digits: sklearn's 8x8 digits as 5 tasks of 2 classes (class-IL and task-IL).

  python -m scripts.run --config=research/configs/split_digits.py \
      --config.algorithm=naive --workdir=runs/split_digits_naive

Default MLP 2x400, Adam 1e-3, batch 32, 20 epochs per task; a run takes a few
seconds on a 2-core CPU. Figures it reaches are in docs/results.md.
"""

from research.configs import common


def get_config():
    config = common.base()
    config.dataset = "split_digits"
    config.scenario = "class"
    config.num_tasks = 5
    return config
