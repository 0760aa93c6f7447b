"""twistd plugin: `twistd -n callgw [--config FILE]`. Kept tiny; callgw.tap is imported lazily."""
from twisted.application.service import ServiceMaker

callgw = ServiceMaker("callgw", "callgw.tap", "callgw telephony gateway", "callgw")
