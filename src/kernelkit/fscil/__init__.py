"""Few-shot class-incremental learning with training-free prototype calibration (TEEN).

Public API::

    from kernelkit.fscil import TeenConfig, create_method, plan_from_index_files, run_plan, teen_calibrate

    plan = plan_from_index_files("fscil_index_list/cifar100", train_labels, test_labels)
    teen = create_method("teen", tau=TeenConfig.tau, alpha=0.5)   # defaults: TeenConfig()
    result = run_plan(teen, plan, train_labels, features_of_rows, test_features)
"""

from kernelkit.fscil.core import (
    COSINE_TEMPERATURE,
    HM_VARIANT,
    TeenConfig,
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
    "COSINE_TEMPERATURE", "HM_VARIANT", "OFFICIAL_SETTINGS", "TEEN", "FSCILResult", "PrototypeBaseline",
    "PrototypeClassifier", "Session", "SessionPlan", "SplitFileError", "TeenConfig", "class_prototypes",
    "cosine_logits", "create_method", "generate_plan", "harmonic_mean", "list_methods", "performance_drop",
    "plan_from_index_files", "plan_from_path_files", "register_method", "run_plan", "session_metrics",
    "teen_calibrate",
]
