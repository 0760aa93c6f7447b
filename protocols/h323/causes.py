"""H.323's cause tables (H.225.0 table 5 and our RAS choices), apart from the codecs so that
``callgw.causes`` can register them without importing asn1tools.

Owns: ``REASON_TO_CAUSE`` (ReleaseCompleteReason -> Q.850), ``CAUSE_TO_REASON`` (the reason we
add to a ReleaseComplete for a Q.850 cause), ``ARJ_CAUSE`` (AdmissionRejectReason -> Q.850).

Tests: tests/h323/test_call.py, tests/h323/test_ras.py, tests/h323/test_h323_leg.py.
"""
from __future__ import annotations

#: H.225.0 table 5: ReleaseCompleteReason -> Q.850 cause (and the cause we send for each reason).
REASON_TO_CAUSE = {
    "noBandwidth": 34, "gatekeeperResources": 47, "unreachableDestination": 3,
    "destinationRejection": 16, "invalidRevision": 88, "noPermission": 111,
    "unreachableGatekeeper": 38, "gatewayResources": 42, "badFormatAddress": 28,
    "adaptiveBusy": 41, "inConf": 17, "undefinedReason": 31, "facilityCallDeflection": 16,
    "securityDenied": 31, "calledPartyNotRegistered": 20, "callerNotRegistered": 31,
    "newConnectionNeeded": 47, "invalidCID": 31, "hopCountExceeded": 25,
}

#: Q.850 cause -> ReleaseCompleteReason we send with it (H.225.0 table 5, read backwards).
CAUSE_TO_REASON = {
    1: "unreachableDestination", 3: "unreachableDestination", 17: "inConf", 21: "destinationRejection",
    28: "badFormatAddress", 34: "noBandwidth", 38: "unreachableGatekeeper", 41: "adaptiveBusy",
    42: "gatewayResources", 47: "gatekeeperResources", 88: "invalidRevision", 111: "noPermission",
}

#: AdmissionRejectReason -> Q.850 cause of the call (H.225.0 does not fix one: ours).
ARJ_CAUSE = {
    "calledPartyNotRegistered": 20, "invalidPermission": 21, "requestDenied": 34,
    "undefinedReason": 31, "callerNotRegistered": 21, "routeCallToGatekeeper": 23,
    "invalidEndpointIdentifier": 21, "resourceUnavailable": 47, "securityDenial": 21,
    "qosControlNotSupported": 49, "incompleteAddress": 28, "aliasesInconsistent": 28,
    "routeCallToSCN": 23, "exceedsCallCapacity": 34, "collectDestination": 28,
    "collectPIN": 21, "noRouteToDestination": 3, "unallocatedNumber": 1,
}
