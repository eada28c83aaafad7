"""A memory hog in a memory cgroup: the kernel's OOM killer ends its xdist worker with SIGKILL.
It makes itself the OOM killer's first choice, so the controller survives to report it."""

LEAK = []


def test_memory_hog():
    with open("/proc/self/oom_score_adj", "w") as adj:
        adj.write("1000")
    while True:
        LEAK.append(bytearray(8 << 20))
