"""Placeholders for torchvision names that timm imports but the oracles never call."""


def placeholder(module: str, name: str) -> type:
    """A class standing for ``module.name``: importing it works, using it says why it cannot."""

    def fail(*args, **kwargs):
        raise NotImplementedError(f"{module}.{name} is a stand-in of the test shim; it cannot run")

    return type(name, (), {"__init__": fail, "__call__": fail, "__module__": module})


def module_getattr(module: str):
    """A module-level ``__getattr__`` that answers any public name with a placeholder."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return placeholder(module, name)

    return __getattr__
