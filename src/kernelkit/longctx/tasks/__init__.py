"""M4LE task builders: a registry of tasks, each turning a source dataset into bucketed instances."""

from kernelkit.longctx.tasks.base import (
    ABILITIES,
    TASKS,
    BucketFitError,
    BuildContext,
    TaskDef,
    build_task,
    register_task,
)

__all__ = ["ABILITIES", "TASKS", "BucketFitError", "BuildContext", "TaskDef", "build_task", "register_task"]
