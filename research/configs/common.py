"""Fields every continual config shares; a config file starts from ``base()``."""

import ml_collections

import algorithms


def runlocal(arg: str | None) -> bool:
    """Whether ``CONFIG.py:runlocal`` asked for the seconds-long smoke run; any other word
    after the ':' is refused (a typo would otherwise run the full config, or the smoke one)."""
    if arg not in (None, "", "runlocal"):
        raise ValueError(f"unknown argument {arg!r} after ':'; choices: runlocal")
    return arg == "runlocal"


def base() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Stream.
    config.dataset = "split_digits"
    config.scenario = "class"  # class | task | domain
    config.num_tasks = 5
    config.class_order = ""  # e.g. "9,8,7,6,5,4,3,2,1,0"; empty = natural order
    config.tfds_name = ""  # with dataset='tfds'
    config.data_dir = ""
    # Model.
    config.model = "mlp"
    config.hidden = (400, 400)
    config.channels = (32, 64)
    config.cnn_hidden = 128
    # Text (config.model='text', datasets 'sentiment' and 'text_file').
    config.encoder = "minilm"  # 'minilm' or a local Hugging Face BERT-family directory
    config.encoder_layers = 0  # keep the bottom k layers only (a truncated student); 0 = all
    config.head = "pooled"  # pooled (mask mean) | cls | textcnn | scratch_textcnn
    config.max_length = 64
    config.domains = "tweets,movies,amazon,nyt"  # sentiment domains, in stream order
    config.max_examples_per_domain = 0  # 0 = every example
    config.text_files = ""  # dataset='text_file': comma-separated CSV/JSONL paths, one task each
    config.text_column = "text"
    config.label_column = "label"
    config.label_set = "negative,neutral,positive"
    config.update_from = ""  # workdir of a text run: its data becomes task 0 (scripts.update)
    # linear probe on features encoded once (model='mlp'): the sentence embedding,
    # mean-pooled and L2-normalised as all-MiniLM-L6-v2 is used; the uncached probe's
    # head reads the mean-pooled states as they are
    config.cached_features = False
    # Fine-tuning mode (research/finetune.py): which parameters train and how fast.
    config.finetune = "full"  # full|linear_probe|freeze_bottom|discriminative|prompt|lora
    config.freeze_layers = 0  # freeze_bottom: embeddings and the bottom k layers are frozen
    config.layer_decay = 0.8  # discriminative: layer i's rate is lr * decay^(depth above i)
    config.lora_rank = 8
    config.lora_alpha = 16.0
    config.num_prompt_tokens = 20
    config.prompt_init = "random"  # random: N(0, 0.02) | vocab: sampled word embeddings
    config.teacher_workdir = ""  # algorithm='distill': the fine-tuned teacher's workdir
    # Method: `algorithm = 'ewc'` is algorithms/ewc.py; hp holds every method's
    # hyper-parameters, sweep.NAME = "1,10,100" vmaps a float one in one program.
    config.algorithm = "naive"
    config.hp = ml_collections.ConfigDict(algorithms.default_hparams())
    config.sweep = ml_collections.ConfigDict(
        {k: "" for k, v in config.hp.items() if isinstance(v, float)})
    # Optimizer and schedule.
    config.optimizer = "adam"
    config.learning_rate = 1e-3
    config.weight_decay = 0.0
    config.decay_vectors = False  # adamw: decay biases and norms too (BERT's recipe does not)
    config.clip_norm = 0.0
    config.batch_size = 32
    config.num_epochs = 20
    config.reset_optimizer = True  # fresh optimizer state at each task
    # Devices (research/distributed.py): batch split over 'data', state replicated.
    config.mesh_shape = ""  # "" = every device on 'data'; "DATA,MODEL" e.g. "4,2" or "-1,2"
    config.compute_dtype = "float32"  # float32 | bfloat16 (bf16 compute, float32 master weights)
    config.shard_data = False  # split the training pool's rows over 'data' (each host its own)
    config.shard_runs = False  # split the runs (seeds x sweep) over 'data' instead of the batch
    config.stream_chunk_steps = 0  # >0: pools stay on the host, K steps copied per call
    # Runs: num_seeds seeds (x sweep values) vmapped into one program.
    config.seed = 0
    config.num_seeds = 1
    # Checkpoints and reports.
    config.checkpoint_every_epochs = 10  # the epochs between checkpoints run as one call
    config.keep_checkpoints = 3
    config.skip_nonfinite = False
    config.eval_batch_size = 256
    config.plots = True  # PNG plots (matplotlib) next to results.json
    config.tensorboard = False
    config.progress = True
    return config
