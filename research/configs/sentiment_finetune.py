"""The initial domain model of the deployment workflow: MiniLM fine-tuned on movie reviews.

  python -m scripts.finetune --config=research/configs/sentiment_finetune.py --workdir=W
  python -m scripts.update --from=W --data=new.csv --method=ewc --workdir=W2
  python -m scripts.predict --from=W2 --input=texts.txt

``--config.finetune`` picks the mode (full, linear_probe, freeze_bottom,
discriminative, prompt, lora; research/finetune.py); with
``--config.finetune=linear_probe --config.cached_features=True`` texts are
encoded once and a linear head trains on the vectors in seconds. Figures and
timings are in docs/results_text.md.
"""

from research.configs import sentiment_domains


def get_config(runlocal: str = ""):
    config = sentiment_domains.get_config(runlocal)
    config.domains = "movies"
    config.num_tasks = 1
    if not runlocal:
        config.max_examples_per_domain = 1000
    return config
