"""DER++ (Buzzega et al. 2020): DER's logit replay plus label replay of a second sample.

    L = L_task + alpha * ||z(x') - z_stored||^2 + beta * CE(z(x''), y'')
"""

from algorithms import der, replay
from algorithms.base import Algorithm

NAME = "derpp"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = {**replay.REPLAY_HPARAMS, "derpp_alpha": 0.1, "derpp_beta": 0.5}


def make(hp: dict) -> Algorithm:
    return der.make_der(hp, hp["derpp_alpha"], hp["derpp_beta"])
