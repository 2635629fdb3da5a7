"""M4LE tasks: a registry of tasks, each defined once (source loader, builder and prompt, metric and stop
marks), and scoring by task name through that registry."""

from kernelkit.longctx.tasks.base import (
    ABILITIES,
    DEFAULT_N,
    DEFAULT_SEED,
    TASKS,
    BucketFitError,
    BuildContext,
    TaskDef,
    bucket_scores,
    build_task,
    prepare,
    register_task,
    score,
    task_def,
    task_metric,
)

__all__ = ["ABILITIES", "DEFAULT_N", "DEFAULT_SEED", "TASKS", "BucketFitError", "BuildContext", "TaskDef",
           "bucket_scores", "build_task", "prepare", "register_task", "score", "task_def", "task_metric"]
