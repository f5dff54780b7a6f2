"""Curriculum learning: which training rows a run sees, and when.

``difficulty`` scores texts, ``pacing`` turns a step into a competence and a
competence into the easiest rows, ``stages`` raises competence on validation
accuracy instead, ``self_paced`` weighs rows by the model's own loss, and
``pacer`` applies one of them to the engine's training pools every epoch.
"""
