"""Distillation on movie reviews: a fine-tuned MiniLM teaches a smaller student.

  python -m scripts.finetune --config=research/configs/sentiment_finetune.py \
      --config.max_examples_per_domain=600 --config.learning_rate=1e-4 \
      --workdir=runs/kd_teacher                                            # the teacher
  python -m scripts.finetune --config=research/configs/sentiment_distill.py \
      --config.teacher_workdir=runs/kd_teacher --workdir=runs/kd_l2_st     # 2-layer student
  # TextCNN from scratch: --config.head=scratch_textcnn --config.learning_rate=1e-3
  #   --config.num_epochs=10; the other KL: --config.hp.distill_direction=teacher_student;
  # no distillation (the student alone): --config.algorithm=naive

Loss ``T^2 KL + lambda L_data`` (algorithms/distill.py) with the teacher's
logits computed once before training. The student is the bottom 2 of
MiniLM's 6 layers (pretrained) by default. Measured (one seed, 120 test
sentences): teacher 0.767; 2-layer student 0.667 with this KL, 0.617 on the
labels alone; TextCNN 0.625 and 0.608; about 30 s of training per 2-layer
student on 2 CPU cores. Details in docs/results_text.md.
"""

from research.configs import sentiment_finetune


def get_config(runlocal: str = ""):
    config = sentiment_finetune.get_config(runlocal)
    # Student.
    config.algorithm = "distill"
    config.teacher_workdir = ""  # required: the teacher run's workdir
    config.max_examples_per_domain = 600  # the teacher's split (same seed: the same texts)
    config.encoder_layers = 2
    config.head = "pooled"
    # Distillation: KL(p_student || p_teacher) at temperature 2, plus the data loss.
    config.hp.distill_direction = "student_teacher"
    config.hp.distill_temperature = 2.0
    config.hp.distill_lambda = 1.0
    # Optimizer: a shallower network takes a larger rate.
    config.learning_rate = 1e-4
    config.num_epochs = 5
    if runlocal:
        config.num_epochs = 1
    return config
