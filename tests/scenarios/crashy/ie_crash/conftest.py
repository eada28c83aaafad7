import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    # What pytest-xdist#714 looks like: the scheduler loses track of the crashed worker.
    raise KeyError(f"<WorkerController {report.node.gateway.id}>")
