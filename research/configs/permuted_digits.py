"""Permuted-Digits: 10 pixel permutations of sklearn's digits (domain-IL).

  python -m scripts.run --config=research/configs/permuted_digits.py \
      --config.algorithm=naive --workdir=runs/permuted_digits_naive
"""

from research.configs import common


def get_config():
    config = common.base()
    config.dataset = "permuted_digits"
    config.scenario = "domain"
    config.num_tasks = 10
    return config
