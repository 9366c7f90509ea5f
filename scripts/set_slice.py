#!/usr/bin/env python3
"""Asks the kernel for a shorter EEVDF time slice for one thread: set_slice.py TID MICROSECONDS.

Linux 6.12+ reads `sched_runtime` of a SCHED_OTHER thread as the slice it asks for (0.1-100 ms);
a shorter slice gives the thread an earlier virtual deadline, so on wake-up it preempts a
running thread sooner. The flag SCHED_FLAG_RESET_ON_FORK keeps threads the target creates later
(pool workers spawned on demand) at the default slice. Used by stall_bench's
`offload-short-slice` variant (issue 14's experiment); needs root or CAP_SYS_NICE to change
another process's thread. Prints the slice the kernel reports back.
"""
import ctypes
import os
import sys

SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
SYS_SCHED_GETATTR = {"x86_64": 315, "aarch64": 275}
SCHED_FLAG_RESET_ON_FORK = 0x01


class SchedAttr(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def main():
    tid, micros = int(sys.argv[1]), int(sys.argv[2])
    machine = os.uname().machine
    libc = ctypes.CDLL(None, use_errno=True)
    attr = SchedAttr()
    attr.size = ctypes.sizeof(SchedAttr)
    if libc.syscall(SYS_SCHED_GETATTR[machine], tid, ctypes.byref(attr), attr.size, 0) != 0:
        sys.exit(f"sched_getattr({tid}): {os.strerror(ctypes.get_errno())}")
    attr.size = ctypes.sizeof(SchedAttr)
    attr.sched_policy = 0  # SCHED_OTHER; the nice value read above is kept
    attr.sched_flags = SCHED_FLAG_RESET_ON_FORK
    attr.sched_runtime = micros * 1000
    if libc.syscall(SYS_SCHED_SETATTR[machine], tid, ctypes.byref(attr), 0) != 0:
        sys.exit(f"sched_setattr({tid}, {micros} us): {os.strerror(ctypes.get_errno())}")
    check = SchedAttr()
    libc.syscall(SYS_SCHED_GETATTR[machine], tid, ctypes.byref(check), ctypes.sizeof(check), 0)
    print(f"thread {tid}: slice {check.sched_runtime / 1000:.0f} us")


if __name__ == "__main__":
    main()
