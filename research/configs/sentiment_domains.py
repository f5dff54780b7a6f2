"""Sentiment in four domains (tweets -> movies -> amazon -> nyt), MiniLM fine-tuned in turn.

  python -m scripts.run --config=research/configs/sentiment_domains.py \
      --config.algorithm=naive --workdir=runs/sentiment_naive

Domain-incremental: one 3-way head (negative/neutral/positive) shared by all
domains; each domain is tested on its own test split. Pass
``--config.max_examples_per_domain=600`` for a CPU-sized run (~10 min on 2
cores per method); figures are in docs/results_text.md.
"""

from research.configs import common


def encoder_hparams(max_length: int) -> dict:
    """Method hyper-parameters sized for a 22M-parameter encoder (also what
    scripts.update gives a method the fine-tuning run did not use)."""
    return {"buffer_input_size": 3 * max_length,  # replay stores packed tokens
            "ewc_max_tasks": 4, "fisher_samples": 256}


def get_config(runlocal: str = ""):
    common.runlocal(runlocal)  # the other sentiment configs start here
    config = common.base()
    # Stream.
    config.dataset = "sentiment"
    config.scenario = "domain"
    config.domains = "tweets,movies,amazon,nyt"
    config.num_tasks = 4  # the stream has one task per domain in config.domains
    config.max_length = 64
    # Model: pretrained MiniLM, mean-pooled states -> linear head.
    config.model = "text"
    config.encoder = "minilm"
    config.head = "pooled"
    config.finetune = "full"
    # Curriculum (research/curriculum/): '' trains on every row in random order;
    # length | rare_words | teacher_loss | self_paced keep the easiest c(epoch) fraction.
    config.curriculum = ""
    config.pacing = "linear"  # linear | root | step | exponential
    config.c0 = 0.1  # competence at each task's first epoch
    config.curriculum_epochs = 0  # epochs to full competence; 0 = half of num_epochs
    config.curriculum_balanced = False  # take the easiest fraction of each class
    config.self_paced_weights = "hard"  # self_paced: hard | linear (Jiang et al. 2014)
    config.hp.update(encoder_hparams(config.max_length))
    # Optimizer.
    config.optimizer = "adamw"
    config.learning_rate = 5e-5
    config.weight_decay = 0.01  # matrices only: biases and LayerNorm are not decayed
    config.batch_size = 32
    config.num_epochs = 3
    config.eval_batch_size = 128
    config.checkpoint_every_epochs = 100
    config.keep_checkpoints = 1
    if runlocal:  # a seconds-long smoke run: 2 layers, 16 tokens, a few examples
        config.encoder_layers = 2
        config.max_length = 16
        config.hp.update(encoder_hparams(config.max_length))
        config.max_examples_per_domain = 40
        config.num_epochs = 1
        config.batch_size = 8
        config.eval_batch_size = 16
        config.plots = False
        config.progress = False
    return config
