"""kernelkit.utils.allocator: with freed blocks retained, a repeated large conv output stops page-faulting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_CHILD = r"""
import resource, sys, torch, torch.nn.functional as F
torch.set_num_threads(1)
if sys.argv[1] == "retain":
    from kernelkit.utils.allocator import retain_freed_memory
    assert retain_freed_memory()
else:  # glibc's starting mmap threshold (128 KiB), held fixed: by default glibc raises it on the fly, so whether
    # this process would fault depends on its allocation history (torch's import included)
    import ctypes, ctypes.util
    assert ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 128 << 10)
x, w = torch.randn(32, 96, 28, 28), torch.randn(96, 1, 9, 9)  # a 9.6 MB output per call
with torch.no_grad():
    for _ in range(3):
        F.conv2d(x, w, padding=4, groups=96)
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        F.conv2d(x, w, padding=4, groups=96)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 5)
"""


def _faults_per_call(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, timeout=300,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_retained_memory_stops_page_faults_of_a_repeated_conv_output() -> None:
    pages = 32 * 96 * 28 * 28 * 4 / 4096
    retained = _faults_per_call("retain")
    assert retained < 0.05 * pages, f"freed blocks should be reused: {retained} page faults per call"
    cold = _faults_per_call("cold")  # glibc's starting threshold held fixed: what the retained setting avoids
    assert cold > 0.5 * pages, f"default malloc settings faulted {cold} pages per call, retained {retained}"


_MMAP_CHILD = r"""
import ctypes, ctypes.util, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "retain":
    from kernelkit.utils.allocator import retain_freed_memory
    assert retain_freed_memory() and retain_freed_memory()  # once per process; a second call changes nothing
before = libc.mallinfo2().hblkhd
p = libc.malloc(20 << 20)  # 20 MiB: above glibc's starting mmap threshold, below the retained one
print(libc.mallinfo2().hblkhd - before)
libc.free(p)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_retain_moves_a_20_mib_block_from_mmap_to_the_heap() -> None:
    """The mechanism itself: glibc serves a fresh 20 MiB block with mmap by default, from the heap once retained."""
    def mmapped(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _MMAP_CHILD, mode], capture_output=True, text=True, timeout=120)
        if "mallinfo2" in out.stderr:
            pytest.skip("this glibc has no mallinfo2")
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().splitlines()[-1])

    assert mmapped("cold") >= 20 << 20
    assert mmapped("retain") == 0
