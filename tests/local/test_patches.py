"""gdlab.local.patches: the one registry of gdlab's changes to moto (on stand-in classes, with
a registry of their own so the process's real patches are left alone), and every install()
being idempotent through it."""

from __future__ import annotations

import inspect

import pytest

from gdlab.local import patches


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(patches, "_patches", {})
    monkeypatch.setattr(patches, "_log", [])
    monkeypatch.setattr(patches, "_done", {})


def make_owner() -> type:
    class Backend:
        def publish(self, message: str) -> str:
            """moto's publish."""
            return f"sent {message}"

        @property
        def groups(self) -> list[str]:
            return ["moto"]

    return Backend


def test_a_patch_is_applied_once_and_recorded_with_its_original(fresh_registry):
    owner = make_owner()
    moto_publish = owner.publish

    def publish(self: object, message: str) -> str:
        return "gdlab " + moto_publish(self, message)

    assert patches.patch(owner, "publish", publish, "the outbox keeps it") is publish
    assert owner().publish("x") == "gdlab sent x"
    assert publish.__wrapped__ is moto_publish  # inspect.unwrap reaches moto's code
    # patch() only marks: the replacement keeps its own name and module
    assert "test_a_patch" in publish.__qualname__ and publish.__module__ == __name__
    assert patches.original(owner, "publish") is moto_publish

    def again(self: object, message: str) -> str:
        raise AssertionError("a second install must not replace the first")

    # the same (owner, attribute, why) again: nothing changes, the first stays installed
    assert patches.patch(owner, "publish", again, "the outbox keeps it") is publish
    assert owner.publish is publish
    [entry] = patches.applied()
    assert (entry.owner, entry.attribute, entry.why, entry.module) == (
        owner, "publish", "the outbox keeps it", __name__)
    assert (entry.original, entry.previous, entry.replacement) == (
        moto_publish, moto_publish, publish)
    assert not entry.added
    assert "publish" in str(entry) and "the outbox keeps it" in str(entry)


def test_a_different_patch_of_a_patched_attribute_is_refused_unless_it_stacks(fresh_registry):
    owner = make_owner()
    moto_publish = owner.publish

    def first(self: object, message: str) -> str:
        return "first " + moto_publish(self, message)

    patches.patch(owner, "publish", first, "first")

    def second(self: object, message: str) -> str:
        return "second " + first(self, message)

    with pytest.raises(patches.PatchConflict, match="stack=True"):
        patches.patch(owner, "publish", second, "second")
    assert owner.publish is first
    patches.patch(owner, "publish", second, "second", stack=True)
    assert owner().publish("x") == "second first sent x"
    assert second.__wrapped__ is first and inspect.unwrap(owner.publish) is moto_publish
    # original stays moto's; each entry knows what it replaced
    assert patches.original(owner, "publish") is moto_publish
    assert [(e.why, e.previous) for e in patches.applied()] == [
        ("first", moto_publish), ("second", first)]


def test_a_renamed_attribute_fails_loudly_and_additions_are_declared(fresh_registry):
    owner = make_owner()
    with pytest.raises(AttributeError, match="has moto renamed it"):
        patches.patch(owner, "publish_message", lambda self: None, "renamed upstream")
    assert not hasattr(owner, "publish_message") and patches.applied() == []

    def describe(self: object) -> str:
        return "gdlab's"

    patches.patch(owner, "describe", describe, "moto has no describe", add=True)
    assert owner().describe() == "gdlab's" and patches.applied()[0].added
    assert not hasattr(describe, "__wrapped__")  # it wraps nothing
    with pytest.raises(AttributeError, match="moto has none"):
        patches.original(owner, "describe")
    # an "addition" of something moto has is a mistake, not a silent override
    with pytest.raises(patches.PatchConflict, match="moto has one"):
        patches.patch(owner, "publish", describe, "thought it was new", add=True)
    with pytest.raises(LookupError):
        patches.original(owner, "groups")


def test_properties_and_data_are_kept_without_marks(fresh_registry):
    owner = make_owner()
    moto_groups = inspect.getattr_static(owner, "groups")
    gdlab_groups = property(lambda self: ["gdlab"])
    patches.patch(owner, "groups", gdlab_groups, "groups are the ENI's")
    assert owner().groups == ["gdlab"]
    assert patches.original(owner, "groups") is moto_groups  # the property, not its value

    import types

    module = types.ModuleType("moto.fake")
    moto_backends: dict[str, str] = {"moto": "backend"}
    module.backends = moto_backends
    ours = {"gdlab": "backend"}
    patches.patch(module, "backends", ours, "backends are gdlab's")
    assert module.backends is ours and patches.original(module, "backends") is moto_backends
    assert patches.applied()[1].owner is module


def test_wrap_builds_the_replacement_only_when_it_applies(fresh_registry):
    owner = make_owner()
    moto_publish = owner.publish
    built: list[object] = []

    def refusing(original):
        built.append(original)

        def publish(self: object, message: str) -> str:
            return "checked " + original(self, message)

        return publish

    installed = patches.wrap(owner, "publish", "checks first", refusing)
    assert patches.wrap(owner, "publish", "checks first", refusing) is installed
    assert built == [moto_publish]
    assert owner().publish("x") == "checked sent x"
    # functools.wraps' marks: moto's name and docstring, and __wrapped__
    assert installed.__wrapped__ is moto_publish and installed.__doc__ == "moto's publish."
    with pytest.raises(patches.PatchConflict):
        patches.wrap(owner, "publish", "checks again", refusing)
    assert len(built) == 1


def test_once_runs_an_install_step_once_per_module_and_retries_a_failure(fresh_registry):
    ran: list[str] = []

    def failing() -> None:
        raise RuntimeError("route table not ready")

    with pytest.raises(RuntimeError):
        patches.once("routes", "GET /_gdlab/outbox", failing)
    assert patches.registered() == []
    assert patches.once("routes", "GET /_gdlab/outbox", lambda: ran.append("routes"))
    assert not patches.once("routes", "GET /_gdlab/outbox", lambda: ran.append("again"))
    assert ran == ["routes"]
    [step] = patches.registered()
    assert (step.module, step.key, step.why) == (__name__, "routes", "GET /_gdlab/outbox")


def test_every_install_a_second_time_changes_nothing():
    import importlib

    from gdlab.local import extensions

    extensions.install()
    before = [(e.owner, e.attribute, e.replacement) for e in patches.applied()]
    steps = patches.registered()
    installed = [(owner, attribute, inspect.getattr_static(owner, attribute))
                 for owner, attribute, _ in before]
    for name in extensions.MODULES:
        importlib.import_module(name).install()
    assert [(e.owner, e.attribute, e.replacement) for e in patches.applied()] == before
    assert patches.registered() == steps
    assert [(o, a, inspect.getattr_static(o, a)) for o, a, _ in installed] == installed
    from gdlab.local.guardduty import on_new_finding

    assert len(on_new_finding) == len(set(on_new_finding))  # each hook added once
