"""MGCP's vocabulary: verbs, parameter names, return codes, reason codes, restart methods.

Owns the tables of RFC 3435: the nine commands (section 2.3.1, coded as in 3.2.1.1), the
parameter codes of the parameter lines (3.2.2), the return codes (2.4, with their classes:
000 response acknowledgement, 1xx provisional, 2xx success, 4xx transient error, 5xx permanent
error, 8xx package specific), the reason codes of DLCX and RSIP (2.5) and the restart methods
of RSIP (2.3.12). Names only: no parsing here (``message``, ``params``).

Tests: tests/mgcp/test_message.py.
"""
from __future__ import annotations

import enum

#: RFC 3435 2.3.1 / 3.2.1.1: the commands and their names.
VERBS: dict[str, str] = {
    "EPCF": "EndpointConfiguration",
    "CRCX": "CreateConnection",
    "MDCX": "ModifyConnection",
    "DLCX": "DeleteConnection",
    "RQNT": "NotificationRequest",
    "NTFY": "Notify",
    "AUEP": "AuditEndpoint",
    "AUCX": "AuditConnection",
    "RSIP": "RestartInProgress",
}

#: Commands a gateway sends to its call agent (RFC 3435 2.3.1: NTFY, DLCX of 2.3.8, RSIP).
GATEWAY_COMMANDS = frozenset({"NTFY", "DLCX", "RSIP"})

#: RFC 3435 3.2.2: parameter codes and their names.
PARAMETERS: dict[str, str] = {
    "B": "BearerInformation",
    "C": "CallId",
    "I": "ConnectionId",
    "N": "NotifiedEntity",
    "X": "RequestIdentifier",
    "L": "LocalConnectionOptions",
    "M": "ConnectionMode",
    "R": "RequestedEvents",
    "S": "SignalRequests",
    "D": "DigitMap",
    "O": "ObservedEvents",
    "P": "ConnectionParameters",
    "E": "ReasonCode",
    "Z": "SpecificEndPointID",
    "Z2": "SecondEndpointID",
    "I2": "SecondConnectionID",
    "F": "RequestedInfo",
    "Q": "QuarantineHandling",
    "T": "DetectEvents",
    "RM": "RestartMethod",
    "RD": "RestartDelay",
    "A": "Capabilities",
    "ES": "EventStates",
    "PL": "PackageList",
    "MD": "MaxMGCPDatagram",
    "K": "ResponseAck",
    "RC": "RemoteConnectionDescriptor",
    "LC": "LocalConnectionDescriptor",
}

#: RFC 3435 2.4: return codes.
RETURN_CODES: dict[int, str] = {
    0: "Response Acknowledgement",
    100: "The transaction is currently being executed",
    101: "The transaction has been queued for execution",
    200: "The requested transaction was executed normally",
    250: "The connection was deleted",
    400: "The transaction could not be executed, due to some unspecified transient error",
    401: "The phone is already off hook",
    402: "The phone is already on hook",
    403: "Insufficient resources available at this time",
    404: "Insufficient bandwidth at this time",
    405: "The endpoint is restarting",
    406: "Transaction time-out",
    407: "Transaction aborted by some external action",
    409: "Internal overload",
    410: "No endpoint available",
    500: "The endpoint is unknown",
    501: "The endpoint is not ready",
    502: "The endpoint does not have sufficient resources",
    503: "All of wildcard too complicated",
    504: "Unknown or unsupported command",
    505: "Unsupported RemoteConnectionDescriptor",
    506: "Unable to satisfy both LocalConnectionOptions and RemoteConnectionDescriptor",
    507: "Unsupported functionality",
    508: "Unknown or unsupported quarantine handling",
    509: "Error in RemoteConnectionDescriptor",
    510: "Protocol error",
    511: "Unrecognized extension",
    512: "Cannot detect the requested event",
    513: "Cannot generate the requested signal",
    514: "Cannot send the specified announcement",
    515: "Incorrect connection-id",
    516: "Unknown or incorrect call-id",
    517: "Unsupported or invalid mode",
    518: "Unsupported or unknown package",
    519: "Endpoint does not have a digit map",
    520: "The endpoint is restarting",
    521: "Endpoint redirected to another Call Agent",
    522: "No such event or signal",
    523: "Unknown action or illegal combination of actions",
    524: "Internal inconsistency in LocalConnectionOptions",
    525: "Unknown extension in LocalConnectionOptions",
    526: "Insufficient bandwidth",
    527: "Missing RemoteConnectionDescriptor",
    528: "Incompatible protocol version",
    529: "Internal hardware failure",
    530: "CAS signaling protocol error",
    531: "Failure of a grouping of trunks",
    532: "Unsupported value(s) in LocalConnectionOptions",
    533: "Response too large",
    534: "Codec negotiation failure",
    535: "Packetization period not supported",
    536: "Unknown or unsupported RestartMethod",
    537: "Unknown or unsupported digit map extension",
    538: "Event/signal parameter error",
    539: "Invalid or unsupported command parameter",
    540: "Per endpoint connection limit exceeded",
    541: "Invalid or unsupported LocalConnectionOptions",
}

# the codes the call agent itself answers with
OK = 200
CONNECTION_DELETED = 250
TRANSIENT_ERROR = 400
ENDPOINT_UNKNOWN = 500
UNKNOWN_COMMAND = 504
PROTOCOL_ERROR = 510
UNRECOGNIZED_EXTENSION = 511
INCOMPATIBLE_VERSION = 528
UNKNOWN_RESTART_METHOD = 536
UNSUPPORTED_PARAMETER = 539


class CodeClass(enum.Enum):
    """RFC 3435 2.4: the ranges of return codes."""
    ACK = "response acknowledgement"       # 000
    PROVISIONAL = "provisional"            # 100-199
    SUCCESS = "success"                    # 200-299
    TRANSIENT = "transient error"          # 400-499
    PERMANENT = "permanent error"          # 500-599
    PACKAGE = "package specific"           # 800-899
    OTHER = "undefined"                    # anything else (treated as a permanent error)


def code_class(code: int) -> CodeClass:
    """The RFC 3435 2.4 class of return code ``code``."""
    if code == 0:
        return CodeClass.ACK
    if 100 <= code < 200:
        return CodeClass.PROVISIONAL
    if 200 <= code < 300:
        return CodeClass.SUCCESS
    if 400 <= code < 500:
        return CodeClass.TRANSIENT
    if 500 <= code < 600:
        return CodeClass.PERMANENT
    if 800 <= code < 900:
        return CodeClass.PACKAGE
    return CodeClass.OTHER


def describe(code: int) -> str:
    """The RFC's text for ``code`` (a package code says so)."""
    if code in RETURN_CODES:
        return RETURN_CODES[code]
    return f"{code_class(code).value} {code:03d}"


#: RFC 3435 2.5: reason codes (the E: parameter of DLCX from the gateway and of RSIP).
REASON_CODES: dict[int, str] = {
    0: "Endpoint state is normal",
    900: "Endpoint malfunctioning",
    901: "Endpoint taken out-of-service",
    902: "Loss of lower layer connectivity",
    903: "QoS resource reservation was lost",
    904: "Manual intervention",
    905: "Facility failure",
}


class RestartMethod(enum.Enum):
    """RFC 3435 2.3.12: the RestartMethod (RM:) of RSIP."""
    GRACEFUL = "graceful"
    FORCED = "forced"
    RESTART = "restart"
    DISCONNECTED = "disconnected"
    CANCEL_GRACEFUL = "cancel-graceful"

    @classmethod
    def parse(cls, text: str) -> "RestartMethod":
        """``text`` as RM: carries it (case-insensitive); ValueError if unknown."""
        return cls(text.strip().lower())


#: RFC 3435 2.3.5 / 3.2.2.6: connection modes (M:).
CONNECTION_MODES = ("sendonly", "recvonly", "sendrecv", "confrnce", "inactive", "loopback",
                    "conttest", "netwloop", "netwtest")
