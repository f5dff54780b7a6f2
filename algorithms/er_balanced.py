"""Experience replay with a class-balanced buffer (class-balancing reservoir).

Same loss as ER; insertion keeps the buffer's classes as equal as the stream
allows, which matters when tasks or classes arrive with unequal sizes.
"""

from algorithms import replay, replay_buffer
from algorithms.base import Algorithm

NAME = "er_balanced"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = dict(replay.REPLAY_HPARAMS)


def make(hp: dict) -> Algorithm:
    return replay.make_experience_replay(hp, replay_buffer.balanced_add)
