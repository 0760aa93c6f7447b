"""rtpengine's ng control protocol (sans-I/O): see ``protocols.ng.codec``."""
