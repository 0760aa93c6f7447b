"""RFC 4475 torture messages against protocols.sip.message.parse_message.

Each message is written as a list of header lines (joined with CRLF here) plus a body, so the
folding and whitespace the RFC exercises are explicit. Valid messages (RFC 4475 3.1.1, and the
3.2-3.4 ones that are well-formed) must parse; invalid ones (3.1.2, 3.3.1, 3.3.8, 3.3.9) must
raise SipParseError with the status a UAS answers with. Names are the RFC's message tags.
"""
import pytest

from protocols.sip.message import Request, Response, SipParseError, parse_message
from protocols.sip.uri import AbsoluteURI, SipURI, parse_uri

SDP_150 = (b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
           b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n")


def sdp(host="192.0.2.1"):
    return SDP_150.replace(b"192.0.2.1", host.encode())


def msg(lines, body=b""):
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body


WSINV = msg([
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
    "TO :",
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
    "  ;",
    "  tag = 98asjd8",
    "MaX-fOrWaRdS: 0068",
    "Call-ID: wsinv.ndaksdj@192.0.2.1",
    "Content-Length   : 150",
    "cseq: 0009",
    "  INVITE",
    "Via  : SIP  /   2.0",
    " /UDP",
    "    192.0.2.2;branch=390skdjuw",
    "s :",
    "NewFangledHeader:   newfangled value",
    " continued newfangled value",
    "UnknownHeaderWithUnusualValue: ;;,,;;,;",
    "Content-Type: application/sdp",
    "Route:",
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
    "  branch  =   z9hG4bK9ikj8  ,",
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
    " z9hG4bK30239",
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =',
    "      newvalue ;",
    "  secondparam ; q = 0.33",
], sdp("192.0.2.3").replace(b"c=IN IP4 192.0.2.3", b"c=IN IP4 192.0.2.4"))

INTMETH = msg([
    "!interesting-Method0123456789_*+`.%indeed'~ "
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0",
    "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
    'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
    '<sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>',
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1\'+`*%!-.',
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
    "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~",
    "Max-Forwards: 255",
    "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb",
    "Content-Length: 0",
])

ESC01 = msg([
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
    "To: sip:%75se%72@example.com",
    "From: <sip:I%20have%20spaces@example.net>;tag=938",
    "Max-Forwards: 87",
    "i: esc01.239409asdfakjkn23onasd0-3234",
    "CSeq: 234234 INVITE",
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
    "C: application/sdp",
    "Contact:",
    "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
    "Content-Length: 150",
], SDP_150)

ESCNULL = msg([
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:null-%00-null@example.com",
    "From: sip:null-%00-null@example.com;tag=839923423",
    "Max-Forwards: 70",
    "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
    "CSeq: 14398234 REGISTER",
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
    "Contact: <sip:%00@host5.example.com>",
    "Contact: <sip:%00%00@host5.example.com>",
    "L:0",
])

ESC02 = msg([
    "RE%47IST%45R sip:registrar.example.com SIP/2.0",
    'To: "%Z%45" <sip:resource@example.com>',
    'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
    "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
    "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234",
    "CSeq: 29344 RE%47IST%45R",
    "Max-Forwards: 70",
    "Contact: <sip:alias1@host1.example.com>",
    "C%6Fntact: <sip:alias2@host2.example.com>",
    "Contact: <sip:alias3@host3.example.com>",
    "l: 0",
])

LWSDISP = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: caller<sip:caller@example.com>;tag=323",
    "Max-Forwards: 70",
    "Call-ID: lwsdisp.1234abcd@funky.example.com",
    "CSeq: 60 OPTIONS",
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw",
    "l: 0",
])

_LONG = "long" * 24
LONGREQ = msg([
    "INVITE sip:user@example.com SIP/2.0",
    'To: "I have a user name of ' + "extreme" * 10 + ' proportion"<sip:user@example.com:6000;'
    "unknownparam1=very" + _LONG + "value;longparam" + "name" * 25 + "=shortvalue;very" + _LONG
    + "ParameterNameWithNoValue>",
    "F: sip:" + "amazinglylongcallername" * 5 + "@example.net;tag=" + "1298" * 40
    + "424;unknownheaderparam"
    + "name" * 20 + "=unknowheaderparam" + "value" * 15 + ";unknownValueless" + "paramname" * 15,
    "Call-ID: longreq.one" + "really" * 20 + "longcallid",
    "CSeq: 3882340 INVITE",
    "Unknown-" + "Long" * 20 + "-Name: unknown-" + "long" * 20 + "-value; unknown-" + "long" * 20
    + "-parameter-name = unknown-" + "long" * 20 + "-parameter-value",
    "Via: SIP/2.0/TCP sip33.example.com",
    "v: SIP/2.0/TCP sip32.example.com",
    "V: SIP/2.0/TCP sip31.example.com",
    "Via: SIP/2.0/TCP sip30.example.com",
    "ViA: SIP/2.0/TCP sip29.example.com",
    "VIa: SIP/2.0/TCP sip28.example.com",
    "VIA: SIP/2.0/TCP sip27.example.com",
    "via: SIP/2.0/TCP sip26.example.com",
    "viA: SIP/2.0/TCP sip25.example.com",
    "vIa: SIP/2.0/TCP sip24.example.com",
    "vIA: SIP/2.0/TCP sip23.example.com",
    "V :  SIP/2.0/TCP sip22.example.com",
    "v :  SIP/2.0/TCP sip21.example.com",
    "V  : SIP/2.0/TCP sip20.example.com",
    "v  : SIP/2.0/TCP sip19.example.com",
    "Via : SIP/2.0/TCP sip18.example.com",
    "Via  : SIP/2.0/TCP sip17.example.com",
] + [f"Via: SIP/2.0/TCP sip{i}.example.com" for i in range(16, 0, -1)] + [
    "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very" + "long" * 50
    + "branchvalue",
    "Max-Forwards: 70",
    "Contact: <sip:" + "amazinglylongcallername" * 5 + "@host5.example.net>",
    "Content-Type: application/sdp",
    "l: 150",
], SDP_150)

DBLREQ = msg([
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:j.user@example.com;tag=43251j3j324",
    "Max-Forwards: 8",
    "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412",
    "Contact: sip:j.user@host.example.com",
    "CSeq: 8 REGISTER",
    "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492",
    "Content-Length: 0",
]) + msg([
    "INVITE sip:joe@example.com SIP/2.0",
    "t: sip:joe@example.com",
    "From: sip:caller@example.net;tag=141334",
    "Max-Forwards: 8",
    "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234",
    "Content-Type: application/sdp",
    "Content-Length: 150",
], sdp("192.0.2.15").replace(b"m=video", b"m =video"))

SEMIURI = msg([
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
    "To: sip:j_user@example.com",
    "From: sip:caller@example.org;tag=33242",
    "Max-Forwards: 3",
    "Call-ID: semiuri.0ha0isndaksdj",
    "CSeq: 8 OPTIONS",
    "Accept: application/sdp, application/pkcs7-mime,",
    "        multipart/mixed, multipart/signed,",
    "        message/sip, message/sipfrag",
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
    "l: 0",
])

TRANSPORTS = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: <sip:caller@example.com>;tag=323",
    "Max-Forwards: 70",
    "Call-ID:  transports.kijh4akdnaqjkwendsasfdj",
    "Accept: application/sdp",
    "CSeq: 60 OPTIONS",
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw",
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf",
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj",
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee",
    "l: 0",
])

_MPART_BODY = (
    b"--7a9cbec02ceef655\r\nContent-Type: application/sdp\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + SDP_150 + b"\r\n--7a9cbec02ceef655\r\nContent-Type: image/gif\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\nGIF89a\x01\x00\x01\x00\x00\xff\x00,\x00\x00"
    b"\x00\x00\x01\x00\x01\x00\x00\x02\x00;\r\n--7a9cbec02ceef655--\r\n")
MPART01 = msg([
    "MESSAGE sip:kumiko@example.org SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
    "Max-Forwards: 70",
    "Route: <sip:127.0.0.1:5080>",
    "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gv"
    "YjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=",
    "Contact: <sip:fluffy@127.0.0.1:5070>",
    "To: <sip:kumiko@example.org>",
    "From: <sip:fluffy@example.com>;tag=2fb0dcc9",
    "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
    "CSeq: 1 MESSAGE",
    "Content-Transfer-Encoding: binary",
    "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655",
    "Date: Sat, 15 Oct 2005 04:44:56 GMT",
    "User-Agent: SIPimp.org/0.2.5 (curses)",
    f"Content-Length: {len(_MPART_BODY)}",
], _MPART_BODY)

UNREASON = msg([
    "SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d"
    "\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441"
    "\u0442\u043e\u0435",
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf",
    "CSeq: 35 INVITE",
    "From: sip:user@example.com;tag=11141343",
    "To: sip:user@example.edu;tag=2229",
    "Content-Length: 154",
    "Content-Type: application/sdp",
    "Contact: <sip:user@host198.example.com>",
], sdp("192.0.2.198"))

NOREASON = msg([
    "SIP/2.0 100 ",
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
    "Call-ID: noreason.asndj203insdf99223ndf",
    "CSeq: 35 INVITE",
    "From: <sip:user@example.com>;tag=39ansfi3",
    "To: <sip:user@example.edu>;tag=902jndnke3",
    "Content-Length: 0",
    "Contact: <sip:user@host105.example.com>",
])

# 3.2 / 3.3 / 3.4: well-formed messages whose faults are for the transaction layer or the TU.
BADBRANCH = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:caller@example.org;tag=33242",
    "Max-Forwards: 3",
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK",
    "Accept: application/sdp",
    "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n",
    "CSeq: 8 OPTIONS",
    "l: 0",
])

UNKSCM = msg([
    "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=384",
    "Max-Forwards: 3",
    "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34",
    "CSeq: 3923423 OPTIONS",
    "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234",
    "Content-Length: 0",
])

NOVELSC = UNKSCM.replace(b"nobodyKnowsThisScheme:totallyopaquecontent",
                         b"soap.beep://192.0.2.103:3002")

UNKSM2 = msg([
    "REGISTER sip:example.com SIP/2.0",
    "To: isbn:2983792873",
    "From: <http://www.example.com>;tag=3234233",
    "Call-ID: unksm2.daksdj@hyphenated-host.example.com",
    "CSeq: 234902 REGISTER",
    "Max-Forwards: 70",
    "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw",
    "Contact: <name:John_Smith>",
    "l: 0",
])

BEXT01 = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:j_user@example.com",
    "From: sip:caller@example.net;tag=242etr",
    "Max-Forwards: 6",
    "Call-ID: bext01.0ha0isndaksdj",
    "Require: nothingSupportsThis, nothingSupportsThisEither",
    "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis",
    "CSeq: 8 OPTIONS",
    "Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw",
    "Content-Length: 0",
])

_INVUT_BODY = b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'
INVUT = msg([
    "INVITE sip:user@example.com SIP/2.0",
    "Contact: <sip:caller@host5.example.net>",
    "To: sip:j.user@example.com",
    "From: sip:caller@example.net;tag=8392034",
    "Max-Forwards: 70",
    "Call-ID: invut.0ha0isndaksdjadsfij34n23d",
    "CSeq: 235448 INVITE",
    "Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw",
    "Content-Type: application/unknownformat",
    "Content-Length: 40",
], _INVUT_BODY)

REGAUT01 = msg([
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:j.user@example.com;tag=87321hj23128",
    "Max-Forwards: 8",
    "Call-ID: regaut01.0ha0isndaksdj",
    "CSeq: 9338 REGISTER",
    "Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw",
    "Authorization: NoOneKnowsThisScheme opaque-data=here",
    "Content-Length:0",
])

BCAST = msg([
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
    "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",
    "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf",
    "CSeq: 35 INVITE",
    "From: sip:user@example.com;tag=11141343",
    "To: sip:user@example.edu;tag=2229",
    "Content-Length: 154",
    "Content-Type: application/sdp",
    "Contact: <sip:user@host28.example.com>",
], sdp("192.0.2.198"))

ZEROMF = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=3ghsd41",
    "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas",
    "CSeq: 39234321 OPTIONS",
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i",
    "Max-Forwards: 0",
    "Content-Length: 0",
])

CPARAM01 = msg([
    "REGISTER sip:example.com SIP/2.0",
    "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw",
    "Max-Forwards: 70",
    "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe",
    "To: sip:watson@example.com",
    "Call-ID: cparam01.70710@saturn.example.com",
    "CSeq: 2 REGISTER",
    "Contact: sip:+19725552222@gw1.example.net;unknownparam",
    "l: 0",
])
CPARAM02 = CPARAM01.replace(b"Contact: sip:+19725552222@gw1.example.net;unknownparam",
                            b"Contact: <sip:+19725552222@gw1.example.net;unknownparam>")

REGESCRT = msg([
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:user@example.com;tag=8",
    "Max-Forwards: 70",
    "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1",
    "CSeq: 14398234 REGISTER",
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
    "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    "L:0",
])

SDP01 = msg([
    "INVITE sip:user@example.com SIP/2.0",
    "To: sip:j_user@example.com",
    "Contact: <sip:caller@host15.example.net>",
    "From: sip:caller@example.net;tag=234",
    "Max-Forwards: 5",
    "Call-ID: sdp01.ndaksdj9342dasdd",
    "Accept: text/nobodyKnowsThis",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw",
    "Content-Length: 150",
    "Content-Type: application/sdp",
], sdp("192.0.2.5"))

BADDATE = msg([
    "INVITE sip:user@example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=2234923",
    "Max-Forwards: 70",
    "Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234",
    "CSeq: 1392934 INVITE",
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
    "Date: Fri, 01 Jan 2010 16:00:00 EST",
    "Contact: <sip:caller@host5.example.net>",
    "Content-Type: application/sdp",
    "Content-Length: 150",
], sdp("192.0.2.5"))

INV2543 = msg([
    "INVITE sip:UserB@example.com SIP/2.0",
    "Via: SIP/2.0/UDP iftgw.example.com",
    "From: <sip:+13035551111@ift.client.example.net;user=phone>",
    "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>",
    "To: sip:+16505552222@ss1.example.net;user=phone",
    "Call-ID: inv2543.1717@ift.client.example.com",
    "CSeq: 56 INVITE",
    "Content-Type: application/sdp",
], b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\n"
   b"t=0 0\r\nm=audio 49217 RTP/AVP 0\r\n")

VALID = {
    "wsinv": WSINV, "intmeth": INTMETH, "esc01": ESC01, "escnull": ESCNULL, "esc02": ESC02,
    "lwsdisp": LWSDISP, "longreq": LONGREQ, "dblreq": DBLREQ, "semiuri": SEMIURI,
    "transports": TRANSPORTS, "mpart01": MPART01, "unreason": UNREASON, "noreason": NOREASON,
    "badbranch": BADBRANCH, "unkscm": UNKSCM, "novelsc": NOVELSC, "unksm2": UNKSM2,
    "bext01": BEXT01, "invut": INVUT, "regaut01": REGAUT01, "bcast": BCAST, "zeromf": ZEROMF,
    "cparam01": CPARAM01, "cparam02": CPARAM02, "regescrt": REGESCRT, "sdp01": SDP01,
    "baddate": BADDATE,
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_messages_parse(name):
    data = VALID[name]
    m = parse_message(data)
    assert isinstance(m, (Request, Response))
    again = parse_message(m.to_bytes())
    assert again == m


def test_wsinv_details():
    m = parse_message(WSINV)
    assert m.headers.get("Max-Forwards") == "0068"
    assert m.cseq == (9, "INVITE")
    assert m.to_tag == "1918181833n" and m.from_tag == "98asjd8"
    assert m.from_.display == 'J Rosenberg \\"'
    assert m.top_via.host == "192.0.2.2" and m.branch == "390skdjuw"
    vias = m.headers.get_all("Via")
    assert len(vias) == 3
    assert vias[1].startswith("SIP  / 2.0  / TCP")
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    contact = parse_message(WSINV).headers.get("Contact")
    assert contact.startswith('"Quoted string')
    assert len(m.body) == 150


def test_intmeth_details():
    m = parse_message(INTMETH)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = parse_uri(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_tag == "_token~1'+`*%!-."
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"


def test_escapes_kept_as_written():
    m = parse_message(ESC01)
    assert parse_uri(m.uri).user == "sips%3Auser%40example.com"
    contact = m.headers.get("Contact")
    assert contact == "<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>"
    m = parse_message(ESC02)
    assert m.method == "RE%47IST%45R"
    assert m.headers.get_all("Contact") == ["<sip:alias1@host1.example.com>",
                                            "<sip:alias3@host3.example.com>"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_dblreq_ignores_trailing_octets():
    m = parse_message(DBLREQ)
    assert m.method == "REGISTER" and m.body == b""


def test_semiuri_user_part():
    m = parse_message(SEMIURI)
    assert parse_uri(m.uri).user == "user;par=u%40example.net"
    assert len(m.headers.get_all("Accept")) == 6


def test_transports_and_unusual_reasons():
    m = parse_message(TRANSPORTS)
    assert [v.split(" ")[0] for v in m.headers.get_all("Via")] == [
        "SIP/2.0/UDP", "SIP/2.0/SCTP", "SIP/2.0/TLS", "SIP/2.0/UNKNOWN", "SIP/2.0/TCP"]
    assert parse_message(NOREASON).reason == ""
    assert parse_message(UNREASON).reason.startswith("= 2**3 * 5**2 ")
    assert parse_message(MPART01).body == _MPART_BODY


def test_unknown_schemes_parse():
    assert isinstance(parse_uri(parse_message(UNKSCM).uri), AbsoluteURI)
    assert parse_message(NOVELSC).uri == "soap.beep://192.0.2.103:3002"
    m = parse_message(UNKSM2)
    assert isinstance(m.to.uri, AbsoluteURI) and str(m.to.uri) == "isbn:2983792873"
    assert str(m.from_.uri) == "http://www.example.com"


def test_cparam_contact_params():
    from protocols.sip.headers import parse_name_addr
    c1 = parse_name_addr(parse_message(CPARAM01).headers.get("Contact"))
    assert c1.params == {"unknownparam": None} and c1.uri.params == {}
    c2 = parse_name_addr(parse_message(CPARAM02).headers.get("Contact"))
    assert c2.params == {} and c2.uri.params == {"unknownparam": None}
    reg = parse_name_addr(parse_message(REGESCRT).headers.get("Contact"))
    assert reg.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}


def test_inv2543_needs_lenient_mode():
    with pytest.raises(SipParseError) as err:
        parse_message(INV2543)
    assert err.value.status == 400 and "Max-Forwards" in err.value.reason
    m = parse_message(INV2543, strict=False)
    assert m.branch is None
    assert m.to.params == {"user": "phone"} and isinstance(m.to.uri, SipURI)
    assert m.body.startswith(b"v=0")


# ---- invalid messages (RFC 4475 3.1.2, 3.3.1, 3.3.8, 3.3.9) ----------------------------------

BADINV01 = msg([
    "INVITE sip:user@example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:caller@example.net;tag=134161461246",
    "Max-Forwards: 7",
    "Call-ID: badinv01.0ha0isndaksdjasdf3234nas",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.15;;,;,,",
    'Contact: "Joe" <sip:joe@example.org>;;;;',
    "Content-Length: 152",
    "Content-Type: application/sdp",
], sdp("192.0.2.15"))

_INV = [
    "INVITE sip:user@example.com SIP/2.0",
    "Max-Forwards: 80",
    "To: sip:j.user@example.com",
    "From: sip:caller@example.net;tag=93942939o2",
    "Contact: <sip:caller@hungry.example.net>",
    "Call-ID: clerr.0ha0isndaksdjweiafasdk3",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523",
    "Content-Type: application/sdp",
]
CLERR = msg(_INV + ["Content-Length: 9999"], sdp("192.0.2.155"))
NCL = msg(_INV + ["Content-Length: -999"], sdp("192.0.2.53"))

SCALAR02 = msg([
    "REGISTER sip:example.com SIP/2.0",
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3",
    "To: <sip:user@example.com>",
    "From: <sip:user@example.com>;tag=239232jh3",
    "CSeq: 36893488147419103232 REGISTER",
    "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32",
    "Max-Forwards: 300",
    "Expires: 1" + "0" * 100,
    "Contact: <sip:user@host129.example.com>",
    "  ;expires=280297596632815",
    "Content-Length: 0",
])

SCALARLG = msg([
    "SIP/2.0 503 Service Unavailable",
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129",
    "To: <sip:user@example.com>",
    "From: <sip:other@example.net>;tag=2easdjfejw",
    "CSeq: 9292394834772304023312 OPTIONS",
    "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r",
    "Retry-After: 949302838503028349304023988",
    'Warning: 1812 overture "In Progress"',
    "Content-Length: 0",
])

QUOTBAL = msg([
    "INVITE sip:user@example.com SIP/2.0",
    'To: "Mr. J. User <sip:j.user@example.com>',
    "From: sip:caller@example.net;tag=93334",
    "Max-Forwards: 10",
    "Call-ID: quotbal.aksdj",
    "Contact: <sip:caller@host59.example.net>",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234",
    "Content-Type: application/sdp",
    "Content-Length: 152",
], sdp("192.0.2.15"))

_OPT = [
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=39291",
    "Max-Forwards: 23",
    "Call-ID: ltgtruri.1@192.0.2.5",
    "Via: SIP/2.0/UDP 192.0.2.5",
    "Contact: <sip:caller@host5.example.net>",
    "Content-Length: 0",
]
LTGTRURI = msg(["INVITE <sip:user@example.com> SIP/2.0", "CSeq: 1 INVITE"] + _OPT)
LWSRURI = msg(["INVITE sip:user@example.com; lr SIP/2.0", "CSeq: 1 INVITE"] + _OPT)
LWSSTART = msg(["INVITE  sip:user@example.com  SIP/2.0", "CSeq: 1 INVITE"] + _OPT)
TRWS = msg(["OPTIONS sip:remote-target@example.com SIP/2.0  ", "CSeq: 1 OPTIONS"] + _OPT)
ESCRURI = msg(["INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
               "CSeq: 1 INVITE"] + _OPT)

REGBADCT = msg([
    "REGISTER sip:example.com SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:user@example.com;tag=998332",
    "Max-Forwards: 70",
    "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1",
    "CSeq: 1 REGISTER",
    "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw",
    "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    "l: 0",
])

BADASPEC = msg([
    "OPTIONS sip:user@example.org SIP/2.0",
    "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234",
    "Max-Forwards: 70",
    'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423',
    'To: "Watson, Thomas" < sip:t.watson@example.org >',
    "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3",
    "Accept: application/sdp",
    "CSeq: 3923239 OPTIONS",
    "l: 0",
])

BADDN = msg([
    "OPTIONS sip:t.watson@example.org SIP/2.0",
    "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw",
    "Max-Forwards:      70",
    "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
    "To:      Watson, Thomas <sip:t.watson@example.org>",
    "Call-ID: baddn.31415@c.example.com",
    "Accept: application/sdp",
    "CSeq:    3923239 OPTIONS",
    "l: 0",
])

BADVERS = msg([
    "OPTIONS sip:t.watson@example.org SIP/7.0",
    "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw",
    "Max-Forwards:     70",
    "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe",
    "To:      T. Watson <sip:t.watson@example.org>",
    "Call-ID: badvers.31417@c.example.com",
    "CSeq:    1 OPTIONS",
    "l: 0",
])

MISMATCH01 = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:caller@example.net;tag=34525",
    "Max-Forwards: 6",
    "Call-ID: mismatch01.dj0234sxdfl3",
    "CSeq: 8 INVITE",
    "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
    "l: 0",
])

_MM2_BODY = (b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n"
             b"m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n")
MISMATCH02 = msg([
    "NEWMETHOD sip:user@example.com SIP/2.0",
    "To: sip:j.user@example.com",
    "From: sip:caller@example.net;tag=34525",
    "Max-Forwards: 6",
    "Call-ID: mismatch02.dj0234sxdfl3",
    "CSeq: 8 INVITE",
    "Contact: <sip:caller@host.example.net>",
    "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw",
    "Content-Type: application/sdp",
    f"l: {len(_MM2_BODY)}",
], _MM2_BODY)

BIGCODE = msg([
    "SIP/2.0 4294967301 better not break the receiver",
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
    "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i",
    "CSeq: 353494 INVITE",
    "From: <sip:user@example.com>;tag=39ansfi3",
    "To: <sip:user@example.edu>;tag=902jndnke3",
    "Content-Length: 0",
    "Contact: <sip:user@host105.example.com>",
])

INSUF = msg([
    "INVITE sip:user@example.com SIP/2.0",
    "CSeq: 193942 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf",
    "Content-Type: application/sdp",
    "l: 152",
], sdp("192.0.2.95"))

MULTI01 = msg([
    "INVITE sip:user@company.com SIP/2.0",
    "Contact: <sip:caller@host25.example.net>",
    "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw",
    "Max-Forwards: 70",
    "CSeq: 5 INVITE",
    "Call-ID: multi01.98asdh@192.0.2.1",
    "CSeq: 59 INVITE",
    "Call-ID: multi01.98asdh@192.0.2.2",
    "From: sip:caller@example.com;tag=3413415",
    "To: sip:user@example.com",
    "To: sip:other@example.net",
    "From: sip:caller@example.net;tag=2923420123",
    "Content-Type: application/sdp",
    "l: 154",
    "Contact: <sip:caller@host36.example.net>",
    "Max-Forwards: 5",
], sdp("192.0.2.25"))

MCL01 = msg([
    "OPTIONS sip:user@example.com SIP/2.0",
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423",
    "To: sip:user@example.com",
    "From: sip:other@example.net;tag=3923942",
    "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf",
    "CSeq: 15932 OPTIONS",
    "Content-Length: 13",
    "Max-Forwards: 60",
    "Content-Length: 5",
    "Content-Type: text/plain",
], b"There's no way to know how many octets are supposed to be here.\r\n")

INVALID = {
    "badinv01": (BADINV01, 400), "clerr": (CLERR, 400), "ncl": (NCL, 400),
    "scalar02": (SCALAR02, 400), "scalarlg": (SCALARLG, 400), "quotbal": (QUOTBAL, 400),
    "ltgtruri": (LTGTRURI, 400), "lwsruri": (LWSRURI, 400), "lwsstart": (LWSSTART, 400),
    "trws": (TRWS, 400), "escruri": (ESCRURI, 400), "regbadct": (REGBADCT, 400),
    "badaspec": (BADASPEC, 400), "baddn": (BADDN, 400), "badvers": (BADVERS, 505),
    "mismatch01": (MISMATCH01, 400), "mismatch02": (MISMATCH02, 400), "bigcode": (BIGCODE, 400),
    "insuf": (INSUF, 400), "multi01": (MULTI01, 400), "mcl01": (MCL01, 400),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_messages_rejected(name):
    data, status = INVALID[name]
    with pytest.raises(SipParseError) as err:
        parse_message(data)
    assert err.value.status == status
    assert err.value.reason


@pytest.mark.parametrize("name, words", [
    ("clerr", "Content-Length"), ("ncl", "Content-Length"), ("scalar02", "CSeq"),
    ("quotbal", "quoted"), ("ltgtruri", "URI"), ("lwsstart", "Request-Line"),
    ("escruri", "Request-URI"), ("mismatch01", "CSeq"), ("bigcode", "status"),
    ("insuf", "Missing"), ("multi01", "Multiple"), ("mcl01", "Content-Length"),
])
def test_reason_names_the_fault(name, words):
    with pytest.raises(SipParseError) as err:
        parse_message(INVALID[name][0])
    assert words.lower() in err.value.reason.lower()
