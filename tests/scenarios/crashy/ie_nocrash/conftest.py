import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    raise KeyError(f"<WorkerController {node.gateway.id}>")
