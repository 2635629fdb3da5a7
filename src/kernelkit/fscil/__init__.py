"""Few-shot class-incremental learning with training-free prototype calibration (TEEN).

Public API::

    from kernelkit.fscil import teen_calibrate, generate_plan, plan_from_index_files, create_method, run_plan

    plan = plan_from_index_files("fscil_index_list/cifar100", train_labels, test_labels)
    result = run_plan(create_method("teen", tau=16, alpha=0.1), plan, train_labels, features_of_rows, test_features)
"""

from kernelkit.fscil.core import (
    HM_VARIANT,
    class_prototypes,
    cosine_logits,
    harmonic_mean,
    performance_drop,
    session_metrics,
    teen_calibrate,
)
from kernelkit.fscil.methods import (
    TEEN,
    PrototypeBaseline,
    PrototypeClassifier,
    create_method,
    list_methods,
    register_method,
)
from kernelkit.fscil.protocol import (
    OFFICIAL_SETTINGS,
    Session,
    SessionPlan,
    SplitFileError,
    generate_plan,
    plan_from_index_files,
    plan_from_path_files,
)
from kernelkit.fscil.sessions import FSCILResult, run_plan

__all__ = [
    "HM_VARIANT", "OFFICIAL_SETTINGS", "TEEN", "FSCILResult", "PrototypeBaseline", "PrototypeClassifier", "Session",
    "SessionPlan", "SplitFileError", "class_prototypes", "cosine_logits", "create_method", "generate_plan",
    "harmonic_mean", "list_methods", "performance_drop", "plan_from_index_files", "plan_from_path_files",
    "register_method", "run_plan", "session_metrics", "teen_calibrate",
]
