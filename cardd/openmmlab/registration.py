"""Putting cardd's classes in OpenMMLab's registries, as mmdet puts its own."""

from __future__ import annotations


def register_once(registry):
    """A class decorator that puts the class in `registry` under its name, once: a
    second import of its module (by another name) finds it there and leaves it."""

    def decorate(cls: type) -> type:
        if cls.__name__ not in registry.module_dict:
            registry.register_module(module=cls)
        return cls

    return decorate
