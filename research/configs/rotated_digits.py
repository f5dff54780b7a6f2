"""Rotated-Digits: sklearn's digits rotated by 0, 36, ..., 144 degrees (domain-IL).

  python -m scripts.run --config=research/configs/rotated_digits.py --workdir=runs/rotated
"""

from research.configs import common


def get_config():
    config = common.base()
    config.dataset = "rotated_digits"
    config.scenario = "domain"
    config.num_tasks = 5
    return config
