"""Experience replay with a reservoir buffer (Chaudhry et al. 2019, "tiny episodic memories").

Each step trains on the current batch plus ``replay_batch_size`` examples (by default
as many) drawn from a ``buffer_size`` reservoir of everything seen so far.
"""

from algorithms import replay, replay_buffer
from algorithms.base import Algorithm

NAME = "er"
COMPATIBILITY = ("class", "task", "domain")
HPARAMS = dict(replay.REPLAY_HPARAMS)


def make(hp: dict) -> Algorithm:
    return replay.make_experience_replay(hp, replay_buffer.reservoir_add)
