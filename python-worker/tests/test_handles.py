import grpc
import pytest

from ctrl_worker.errors import RequestError
from ctrl_worker.handles import HandleRegistry


def test_add_get_and_kind_checks():
    registry = HandleRegistry()
    name = registry.add("backbone", "model", "a model")
    assert name == "backbone/1"
    assert registry.get(name, "backbone", str, "backbone") == "model"
    with pytest.raises(RequestError, match=r"^trajectory: handle 'backbone/1' is a backbone, expected a trajectory") as info:
        registry.get(name, "trajectory", str, "trajectory")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(RequestError, match=r"^backbone: no live handle 'backbone/9'") as info:
        registry.get("backbone/9", "backbone", str, "backbone")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_release_takes_children_along_and_forgets_them_in_the_parent():
    registry = HandleRegistry()
    parent = registry.add("backbone", object(), "")
    child = registry.add("trajectory", object(), "", parent=parent)
    other = registry.add("trajectory", object(), "", parent=parent)
    assert registry.release(child, "handle") == [child]
    assert sorted(registry.release(parent, "handle")) == sorted([parent, other])
    assert registry.list() == []
    with pytest.raises(RequestError, match="no live handle"):
        registry.release(parent, "handle")
