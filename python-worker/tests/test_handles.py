import grpc
import pytest

from ctrl_worker.rpc.errors import RequestError
from ctrl_worker.rpc.handles import HandleRegistry


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


def test_a_handle_in_use_by_a_running_call_is_not_released():
    import threading

    registry = HandleRegistry()
    backbone = registry.add("backbone", object(), "")
    control = registry.add("control", object(), "", parent=backbone)
    looked_up, finish = threading.Event(), threading.Event()

    def running_call():
        with registry.call_scope():
            registry.get(control, "control", object, "control")
            looked_up.set()
            finish.wait(10)

    thread = threading.Thread(target=running_call)
    thread.start()
    looked_up.wait(10)
    for name in (control, backbone):  # the control, or the backbone it depends on
        with pytest.raises(RequestError, match=rf"^handle: {name} is in use by 1 running call \({control} \(1\)\)") as info:
            registry.release(name, "handle")
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert [n for n, _ in registry.list()] == [backbone, control]
    finish.set()
    thread.join()
    assert sorted(registry.release(backbone, "handle")) == sorted([backbone, control])


def test_a_call_may_release_what_it_uses_and_cannot_add_under_a_released_parent():
    registry = HandleRegistry()
    rollout = registry.add("rollout", object(), "")
    with registry.call_scope():
        registry.get(rollout, "rollout", object, "rollout")
        assert registry.release(rollout, "rollout") == [rollout]
        with pytest.raises(RequestError, match=r"was released while this call ran") as info:
            registry.add("trajectory", object(), "", parent=rollout)
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert registry.list() == []
