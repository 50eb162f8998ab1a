"""arforge.train: config schema, the generic trainer (accelerate), checkpoints, EMA and LR schedules.

Modules: ``schema`` (RunConfig and its sections, ``load_run_config``), ``task`` (``TrainTask`` and
the ``TASKS`` registry), ``trainer`` (``Trainer``, ``train``), ``checkpoint``, ``ema``, ``schedule``,
``optim``, ``metrics`` and ``commands`` (``arforge train``). Import what you need from the modules;
this package imports nothing heavy by itself.
"""
