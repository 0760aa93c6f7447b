"""The JSON-lines log file: every log event also written as one JSON line while running.

Owned by operations (``[general] log_json``). Built by the composition root (callgw/compose.py).

Tests: tests/test_service.py.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.logger import globalLogPublisher, jsonFileLogObserver


class JsonLogService(Service):
    """Also writes every log event as a JSON line to ``path`` while running."""

    name = "json-log"

    def __init__(self, path: str):
        self.path = path
        self._file = None
        self._observer = None

    def startService(self):
        super().startService()
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            from callgw.startup import StartupError
            raise StartupError(f"[general] log_json {self.path}: cannot write it: "
                               f"{e.strerror or e}") from None
        self._observer = jsonFileLogObserver(self._file)
        globalLogPublisher.addObserver(self._observer)

    def stopService(self):
        super().stopService()
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)
            self._file.close()
            self._observer = self._file = None
