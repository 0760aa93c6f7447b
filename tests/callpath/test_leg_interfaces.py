"""Every leg and leg provider in callgw/callserver/legs/ has every method its interface
declares (``verifyClass``): an interface that grows a method the handler then calls (as
``ICallLeg.statistics`` did) fails here, not in a live call."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from zope.interface.verify import verifyClass

import callgw.callserver.legs as legs
from callgw.interfaces import ICallLeg, ILegProvider


def declared():
    found = []
    for info in pkgutil.iter_modules(legs.__path__):
        module = importlib.import_module(f"{legs.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for iface in (ICallLeg, ILegProvider):
                if iface.implementedBy(cls):
                    found.append((iface, cls))
    return found


CLASSES = declared()


def test_the_legs_are_found():
    names = {cls.__name__ for _, cls in CLASSES}
    assert {"ClientLeg", "SipLeg", "EchoLeg"} <= names, names


@pytest.mark.parametrize("iface, cls", CLASSES,
                         ids=[f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}"
                              for _, c in CLASSES])
def test_each_provides_its_interface(iface, cls):
    assert verifyClass(iface, cls)
