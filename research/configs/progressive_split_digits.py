"""Progressive networks on Split-Digits, task-IL: one column per task, lateral adapters.

  python -m scripts.run --config=research/configs/progressive_split_digits.py \
      --config.num_seeds=5 --workdir=runs/progressive_split_digits

Sets model='progressive' and algorithm='progressive' together (the method
trains column t during task t and needs the model's columns) and
scenario='task' (the only scenario it supports). Columns are 2x100 ReLU MLPs
with adapters as wide as their source layer; Adam 1e-3, batch 32, 20 epochs.
Figures: see the report of the change that added it (ACC, BWT = 0.0 exactly).
"""

from research.configs import common


def get_config():
    config = common.base()
    # Stream.
    config.dataset = "split_digits"
    config.scenario = "task"
    config.num_tasks = 5
    # Model: one column per task (config.num_tasks of them).
    config.model = "progressive"
    config.hidden = (100, 100)
    config.adapter_dim = 0  # width of each lateral adapter; 0 = the source layer's width
    # Method.
    config.algorithm = "progressive"
    return config
