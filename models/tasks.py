"""The model's tasks and their labels: the one place that says what each head predicts.

Single-label tasks are softmax heads; ``purpose`` is multi-label (one sigmoid per purpose).
Binary tasks (complaint, offensive, hate, irony) are two-class softmax heads whose positive
class probability is the reported ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...]
    multi_label: bool = False

    @property
    def binary(self) -> bool:
        """Two classes, the second one meaning "yes" (reported as ``{"label": bool, "score": p}``)."""
        return len(self.labels) == 2 and not self.multi_label


SENTIMENT = Task("sentiment", ("negative", "neutral", "positive"))
EMOTION = Task("emotion", ("anger", "joy", "optimism", "sadness"))
COMPLAINT = Task("complaint", ("no", "yes"))
OFFENSIVE = Task("offensive", ("no", "yes"))
HATE = Task("hate", ("no", "yes"))
IRONY = Task("irony", ("no", "yes"))
PURPOSES = (
    "customer_care",
    "sales_lead",
    "product_feedback",
    "praise",
    "press",
    "investor",
    "employer",
    "risk",
    "spam",
)
PURPOSE = Task("purpose", PURPOSES, multi_label=True)

# Heads trained by the multi-task fine-tune (human labels). Purpose is trained afterwards on the
# fine-tuned encoder's features from weak labels (models/purpose_rules.py), see models/README.md.
SUPERVISED_TASKS: tuple[Task, ...] = (SENTIMENT, EMOTION, COMPLAINT, OFFENSIVE, HATE, IRONY)
ALL_TASKS: tuple[Task, ...] = SUPERVISED_TASKS + (PURPOSE,)
TASKS_BY_NAME = {task.name: task for task in ALL_TASKS}
