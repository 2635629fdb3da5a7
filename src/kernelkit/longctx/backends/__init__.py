"""Generation backends behind one interface (requests in, results out)."""

from kernelkit.longctx.backends.base import BACKENDS, TRUNCATION_POLICIES, Backend, Request, Result, truncate_ids

__all__ = ["BACKENDS", "TRUNCATION_POLICIES", "Backend", "Request", "Result", "truncate_ids"]
