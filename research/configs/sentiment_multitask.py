"""Sentiment polarity (3-way) + intensity (rating regression) on the human-rated corpus.

Run one model, or every arch x weighting against one set of single-task baselines:
  python -m scripts.multitask --config=research/configs/sentiment_multitask.py \
      --config.arch=cross_stitch --config.weighting=uw --workdir=DIR
  python -m scripts.multitask_compare --config=research/configs/sentiment_multitask.py \
      --workdir=DIR

The shared trunk is the frozen pretrained MiniLM: each sentence is encoded once
(mean-pooled sentence embedding) and cached on disk; the multi-task
architectures (research/configs/multi_digits.py lists them) sit on top of the
cached vectors. That is what makes all 30 arch x weighting runs practical on a
2-core CPU: the one-off encoding (7,202 sentences at these defaults) took 195 s,
every run after it 4-11 s, the whole comparison 200 s with the vectors cached.
Fine-tuning the encoder inside the multi-task loop is not offered: it would
need a forward and a backward pass of the encoder over every sentence, every
epoch, in each of the 31 runs. Append ``:runlocal`` for a seconds-long smoke
run (2 encoder layers, 16 tokens, 40 sentences per domain).

Figures at these defaults (seed 0): single-task polarity 68.0 %, intensity MAE
0.831; Delta_m +0.8 % for hard sharing with equal or DWA (+0.6 with PCGrad,
-2.5 with MGDA), within +-1 % for cross-stitch, MTAN and soft sharing,
-10 to -12 % for task BN (it overfits within 8 epochs). Three seeds
(``--config.num_seeds=3``): hard/equal +0.87 +- 0.33 %, task_bn/equal
-7.42 +- 2.26 %. Tables in docs/results_multitask.md.
"""

from __future__ import annotations

import ml_collections

from research.configs import common, multi_digits


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    smoke = common.runlocal(arg)
    config = multi_digits.get_config()  # arch, weighting, optimizer, resume fields
    del config.n_train, config.n_test

    # Data: research/data/sentiment_multitask.py over the cached corpus.
    config.dataset = "sentiment_multitask"
    config.domains = "tweets,movies,amazon,nyt"
    config.max_examples_per_domain = 2000  # 0: all 23,703 sentences
    config.thresholds = (-0.5, 0.5)  # polarity: negative < -0.5 <= neutral <= 0.5 < positive

    # Frozen encoder, features cached (research/data/sentiment_multitask.py).
    config.encoder = "minilm"
    config.encoder_layers = 0  # 0: all of the pretrained layers
    config.max_length = 64
    config.feature_cache_dir = ""  # "": features/ next to the cached corpus

    # Multi-task model on the 384-wide sentence vectors.
    config.hidden = (128, 128)
    config.learning_rate = 1e-3
    config.batch_size = 128
    config.epochs = 8  # test metrics peak at 5-10 epochs; later the MLP overfits 5.6k sentences

    if smoke:
        config.encoder_layers = 2
        config.max_length = 16
        config.max_examples_per_domain = 40
        config.hidden = (32,)
        config.batch_size = 16
        config.epochs = 3
    return config
