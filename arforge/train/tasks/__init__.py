"""Built-in training tasks; importing a module registers its task in :data:`arforge.train.task.TASKS`."""

from arforge.train.tasks import vq  # noqa: F401  (registers "vq_tokenizer")
