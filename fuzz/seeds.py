#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

The seeds are real inputs: protocol examples from the RFCs, the lines and replies of the test
suite's transcripts (the insta snapshots), mq.example.toml, and journal records in the format
mq writes (mq-core/src/queue/record.rs, journal.rs). Each file is named after a hash of its
content, so running this again changes nothing unless the seeds change.

    python3 fuzz/seeds.py
"""

import base64
import glob
import hashlib
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, seeds):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    for old in os.listdir(directory):
        os.remove(os.path.join(directory, old))
    for seed in dict.fromkeys(seeds):
        if isinstance(seed, str):
            seed = seed.encode()
        name = hashlib.sha1(seed).hexdigest()[:16]
        with open(os.path.join(directory, name), "wb") as out:
            out.write(seed)


def transcript_lines(prefix):
    """The lines after `prefix` ("C: " or "S: ") in the test suite's snapshots."""
    lines = []
    for path in sorted(glob.glob(os.path.join(ROOT, "**", "*.snap"), recursive=True)):
        if "/target/" in path:
            continue
        with open(path, encoding="utf-8") as snap:
            for line in snap:
                if line.startswith(prefix) and not line.startswith(prefix + "("):
                    lines.append(line[len(prefix):].rstrip("\n"))
    return sorted(set(lines))


# --- SMTP: commands, DATA, messages, replies, EHLO, AUTH -------------------------------------

COMMANDS = transcript_lines("C: ") + [
    "HELO client.example",
    "EHLO [192.0.2.1]",
    "EHLO [IPv6:2001:db8::1]",
    "MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME",
    "MAIL FROM:<a@example.org> BODY=7BIT",
    "mail from: <A@EXAMPLE.ORG>",
    "MAIL FROM:<@relay.example:a@example.org>",
    'RCPT TO:<"quoted local"@example.net>',
    "RCPT TO:<Postmaster>",
    "RCPT TO:<b@b\u00fccher.example>",
    "RCPT TO:<b@example.net> NOTIFY=NEVER",
    "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
    "AUTH LOGIN",
    "AUTH LOGIN YWxpY2U=",
    "AUTH PLAIN =",
    "NOOP",
    "VRFY postmaster",
    "EXPN staff",
    "HELP",
    "MAIL FROM:a@example.org",
    "RCPT TO:<>",
    "DATA extra",
    "\x00\x01garbage",
]

MESSAGE = (
    "Received: from client.example ([192.0.2.1])\r\n\tby mx.example.org with ESMTP\r\n"
    "From: Jane <jane@example.org>\r\nTo: b@example.net\r\nSubject: hi\r\n"
    "Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n.. a stuffed dot\r\n"
)
MESSAGES = [
    MESSAGE,
    "Subject: hi\r\n\r\nhello\r\n",
    "Subject: hi\n\nbare LF\n",
    "Subject: folded\r\n  over two lines\r\nX-Empty:\r\n\r\n",
    "no header at all\r\n",
    "\r\nbody only\r\n",
    "Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n\xe9t\xe9\r\n",
    "From: a@example.org\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=mq;\r\n"
    " h=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\r\nbody\r\n",
    "Subject: long\r\n\r\n" + "x" * 998 + "\r\n",
    "",
    "From: a@example.org\r\nTo: b@example.net\r\nSubject: multipart\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\n"
    "Content-Type: text/plain\r\n\r\nplain\r\n--b1\r\nContent-Type: text/html\r\n\r\n"
    "<p>html</p>\r\n--b1--\r\n",
    "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n--r\r\n"
    "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
    "Final-Recipient: rfc822; b@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n--r--\r\n",
    "Subject: no colon space\r\nX-Header:value\r\nBroken header line\r\n\r\nbody\r\n",
    "Subject: CR only\rX: y\r\r\nbody",
    "X-Long: " + "a" * 2000 + "\r\n\r\n",
    "Subject: NUL\x00inside\r\n\r\nbody\x00\r\n",
    ":\r\n: empty name\r\n\r\n",
    "Subject: trailing whitespace   \r\n \r\n\r\n",
]

DATA = [b"\x07" + (m.encode() if isinstance(m, str) else m) + b".\r\n" for m in MESSAGES] + [
    b"\x01.\r\n",
    b"\x03line\r\n..dot\r\n.\r\nQUIT\r\n",
    b"\x10no end of data\r\n",
    b"\x02bare\n.\n",
    b"\xff" + b"a" * 300 + b"\r\n.\r\n",
    b"\x05.\r\n.\r\n",
    b"\x04..\r\n.\r\n",
    b"\x06line\r\n.x\r\n.\r\n",
    b"\x01\r\n.\r\n",
    b"\x09line\r\n.\n.\r\n",
    b"\x08line\r\n.\r",
    b"\x00" + b"x\r\n" * 100 + b".\r\n",
]

REPLIES = transcript_lines("S: ")
REPLIES = [r + "\r\n" for r in REPLIES] + [
    "220 mx.example.net ESMTP Postfix\r\n",
    "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 CHUNKING\r\n",
    "250-smtp.example.com Hello\r\n250-AUTH LOGIN PLAIN XOAUTH2\r\n250-AUTH=LOGIN PLAIN\r\n"
    "250 SIZE\r\n",
    "451-4.3.0 first\r\n451-4.3.0 second\r\n451 4.3.0 third\r\n",
    "550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown\r\n",
    "250-2.1.0 a\r\n250 b\r\n",
    "250 2.1000.0 x\r\n",
    "354 go ahead\n",
    "220\r\n",
    "250-a\r\n251 b\r\n",
    "421 4.4.2 mx.example.net Error: timeout exceeded\r\n",
    "554 5.7.1 <c[192.0.2.1]>: Client host rejected: Access denied\r\n",
    "250 a\x00b\xffc\r\n",
    "hello\r\n",
    "250-unfinished\r\n250 PIPE",
    "600 x\r\n",
]

EHLO = [r for r in REPLIES if r.startswith("250")] + [
    "250-mx.example\r\n250-pipelining\r\n250-SIZE 1000000\r\n250-STARTTLS\r\n250-8BITMIME\r\n"
    "250-AUTH PLAIN login\r\n250-AUTH=PLAIN\r\n250-ENHANCEDSTATUSCODES\r\n250-X-UNKNOWN yes\r\n"
    "250 \r\n",
    "250-PIPELINING\r\n250 SIZE lots\r\n",
    "250-mx\r\n250 SIZE\r\n",
    "250-mx.google.example at your service\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
    "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n",
    "250-mx\r\n250-AUTH=CRAM-MD5 DIGEST-MD5\r\n250 AUTH GSSAPI NTLM\r\n",
    "250-mx\r\n250-size 0\r\n250 AUTH plain PLAIN Plain\r\n",
    "250-mx\r\n250-SIZE 18446744073709551615\r\n250 SIZE 18446744073709551616\r\n",
    "250-mx\r\n250-SIZE -1\r\n250 SIZE=1000\r\n",
    "250-mx\r\n250-AUTH\r\n250 AUTH=\r\n",
    "250-mx\r\n250-  PIPELINING  \r\n250 \tSTARTTLS\r\n",
    "250-mx.example\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
    "250 mx.example\r\n",
    "250-mx\n250-PIPELINING\n250 8BITMIME\n",
    "250-mx\r\n250-STARTTLS\r\n250-AUTH LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n",
    "250-mx\r\n250-AUTH LOGIN\xff\r\n250 AUTH \u00e9\r\n",
]


def b64(text):
    return base64.b64encode(text.encode()).decode()


AUTH = [
    "AGFsaWNlAHNlY3JldA==",
    b64("alice\0alice\0secret"),
    b64("admin\0alice\0secret"),
    b64("\0alice\0"),
    b64("\0\0secret"),
    b64("\0alice\0se\0cret"),
    b64("\0j\u00fcrgen\0p\u00e4ss"),
    "YWxpY2U=",
    "YWxpY2U",
    " YWxpY2U= ",
    "VXNlcm5hbWU6",
    "UGFzc3dvcmQ6",
    "*",
    "=",
    "",
    "not base64!",
    "YWxp%2U=",
    "/w==",
    "alice\0secret",
    "\0bob\0hunter2",
    b64("\0a\0b"),
    b64("bob\0alice\0secret"),
    b64("\0alice"),
    b64("alice"),
    b64("\0\0\0"),
    b64("\0al ice\0pass word"),
    "AGFsaWNlAHNlY3JldA",
    "AGFsaWNl\r\nAHNlY3JldA==",
    "AGFsaWNlAHNlY3JldA===",
    "AGFsaWNlAHNlY3JldA=\x00",
    "\t*\t",
    " = ",
    "////",
    "++++",
    "-_-_",
]

# --- The admin port ---------------------------------------------------------------------------

ADMIN = [
    "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8025\r\nUser-Agent: Prometheus/2.45\r\n"
    "Accept: text/plain\r\n\r\n",
    "GET /queue HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n",
    "GET /queue/0000018c2a3b4c5d-0001 HTTP/1.1\r\nHost: [::1]:8025\r\n"
    "Authorization: Bearer 0123456789abcdef\r\n\r\n",
    "GET /queue/0000018c2a3b4c5d-0001/body HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "POST /queue/flush HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    "POST /queue/delete/0000018c2a3b4c5d-0001 HTTP/1.1\r\nHost: mq.localhost\r\n\r\n",
    "POST /reload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\n\r\n",
    "GET /info HTTP/1.0\r\nHost: 192.0.2.1:8025\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n",
    "POST /queue/flush HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\n\r\n",
    "POST /queue/flush HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost:8025\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: rebind.example\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
    "GET /metrics?x=1 HTTP/1.1\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost",
    "\x00\x01 nonsense\r\n\r\n",
    "GET /metrics HTTP/2.0\r\nHost: localhost\r\n\r\n",
    "GET /metrics HTTP/1.1\nHost: localhost\n\n",
    "GET /metrics HTTP/1.1\r\nHost: LOCALHOST:8025\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: [::1]\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n",
    "GET /queue HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer  0123456789abcdef \r\n\r\n",
    "GET /queue HTTP/1.1\r\nHost: localhost\r\nAuthorization: bearer 0123456789abcdef\r\n\r\n",
    "GET /queue HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer 0123456789abcdef\r\n"
    "Authorization: Bearer x\r\n\r\n",
    "GET /metrics/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "get /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET //metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: localhost\r\nOrigin: null\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: localhost.\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: evil.localhost\r\n\r\n",
]

# --- Redis RESP2 ------------------------------------------------------------------------------

RESP = [
    "+OK\r\n",
    "+PONG\r\n",
    "-NOSCRIPT No matching script. Please use EVAL.\r\n",
    "-ERR unknown command 'FOO'\r\n",
    ":1\r\n",
    ":-12\r\n",
    ":0\r\n",
    "$5\r\na\r\nbc\r\n",
    "$40\r\n" + "a" * 40 + "\r\n",
    "$0\r\n\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "*0\r\n",
    "*2\r\n:1\r\n*1\r\n$0\r\n\r\n",
    "*2\r\n$3\r\nabc\r\n:7\r\n+NEXT\r\n",
    "*3\r\n:1\r\n:4\r\n:1733443200000\r\n",
    "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
    "?\r\n",
    ":x\r\n",
    "$-2\r\n",
    "$3\r\nabcd\r\n",
    "*99999999999\r\n",
    "EVALSHA 1f0a 1 mq:rl:sender_domain:example.org 10 3600000",
    "SCRIPT LOAD return 1",
]

# --- Alias maps ---------------------------------------------------------------------------------

ALIASES = [
    "# staff\nsales@example.org  jane@example.org,\n                   bob@example.net\n"
    "@old.example       @example.org\n",
    "postmaster@example.org root@example.org\nabuse@example.org postmaster@example.org\n",
    "a@x b@x\na@X c@x\n",
    "jane@example.org\n",
    "  continued@example.org\n",
    "team@example.org a@example.org, b@example.org , c@example.org\n",
    "team@example.org\ta@example.org\n\t b@example.org\n",
    "\n\n# only comments\n   # indented comment\n",
    "Sales@EXAMPLE.org sales@example.net\nsales@example.org other@example.net\n",
    "user@b\u00fccher.example user@xn--bcher-kva.example\n",
    "@example.org @example.net\n@example.net @example.org\n",
    "loop@example.org loop@example.org\n",
    "bad pattern\n",
    "a@x b@x\nc@x \xff@x\n",
    "a@x b@x\r\nc@x d@x\r\n",
    "a@x @\n",
    "@example.org catchall@example.net\n",
    "info@example.org\tsales@example.org\tsupport@example.org\n",
    "a@x b@x,,c@x\n",
    "a@x b@x\n\n  c@x\n",
    "# a@x b@x\n a@x\n",
    "a@x\n  b@x\n",
    "A@x b@x\nB@X a@x\n",
    "\u00fcser@example.org user@example.org\n",
    "a@x b@y@z\n",
    "a@x\x00 b@x\n",
    "a@.x b@x\n",
    "@ b@x\n",
]
ALIASES = [a.encode("latin-1") if "\xff" in a else a for a in ALIASES]

# --- Config -------------------------------------------------------------------------------------

with open(os.path.join(ROOT, "mq.example.toml"), encoding="utf-8") as example:
    EXAMPLE = example.read()


def sections(text):
    """Each `[section]` of a TOML file with its keys, as a file of its own."""
    parts, current = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("[") and current:
            parts.append("".join(current))
            current = []
        current.append(line)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


CONFIG = [EXAMPLE] + sections(EXAMPLE) + [
    '[engine]\ntimeout = "5s"\n\n[plugins.headers]\nenabled = false\n',
    '[engine]\ntimeout = 2\nslow_poll = "5ms"\nworkers = 1\non_error = "skip"\n',
    '[engine]\ntimout = "1s"\n',
    "[engine]\nworkers = 0\n",
    "[smtp]\nmax_connections = 0\n",
    "[smtp]\nmax_line_length = 100\n",
    '[smtp]\ncommand_timeout = "5 parsecs"\n',
    "[engine]\nworkers = 1\n[smtp]\nmax_message_size = 1\n",
    '[delivery.retry]\nschedule = ["10m", 600, "1h"]\nmax_age = "5d"\n',
    '[dns]\nnameservers = ["127.0.0.1:53", "[::1]:53"]\ntimeout = "2s"\n',
    '[admin]\naddress = "127.0.0.1:8025"\ntoken = "0123456789abcdef"\n',
    '[smtp.auth]\nfailure_window = "1m"\n[smtp.auth.users]\nalice = "$6$salt$hash"\n',
    '[plugins.ratelimit]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:6379/"\n'
    '[[plugins.ratelimit.limit]]\nkey = "sender_domain"\nrate = 100\nper = "1h"\n',
    "not toml at all",
    "[engine\n",
]

# --- The journal --------------------------------------------------------------------------------

MESSAGE_KIND, DONE, DEFER, DELETE = 1, 2, 3, 4
AT = 1_733_443_200_123_456  # microseconds since the epoch


def field(data):
    if isinstance(data, str):
        data = data.encode()
    return struct.pack("<I", len(data)) + data


def message_record(queue_id, client, sender, recipients, body):
    out = bytes([MESSAGE_KIND]) + struct.pack("<QQ", queue_id, AT) + field(client) + field(sender)
    out += struct.pack("<I", len(recipients))
    for address, done, attempts, error in recipients:
        out += field(address) + bytes([done]) + struct.pack("<IQ", attempts, AT + 600_000_000)
        out += b"\x00" if error is None else b"\x01" + field(error)
    return out + field(body)


EXTENDED_MESSAGE_KIND = 9


def extended_record(queue_id, sender, recipients, smtputf8, ret, envid, params, body):
    """A message record with SMTPUTF8 and DSN parameters after its recipients."""
    plain = message_record(queue_id, "client.example[192.0.2.1]", sender, recipients, b"")
    head = bytes([EXTENDED_MESSAGE_KIND]) + plain[1:-4]
    optional = lambda text: b"\x00" if text is None else b"\x01" + field(text)
    head += bytes([smtputf8, ret]) + optional(envid) + struct.pack("<I", len(params))
    for notify, orcpt in params:
        head += bytes([notify]) + optional(orcpt)
    return head + field(body)


RECORDS = [
    message_record(
        0x0000018C2A3B4C5D,
        "client.example[192.0.2.1]",
        "a@example.org",
        [("b@example.net", 0, 0, None)],
        MESSAGE,
    ),
    message_record(
        0x1234,
        "client.example[192.0.2.1]",
        "",
        [
            ("a@example.net", 0, 0, None),
            ("b@example.org", 1, 3, "451 4.7.1 try later"),
        ],
        "Subject: hi\r\n\r\nbody\r\n",
    ),
    message_record(7, "[2001:db8::1]", "postmaster", [("c@xn--bcher-kva.example", 0, 1, "")], ""),
    message_record(8, "", "a@example.org", [], "x"),
    bytes([DONE]) + struct.pack("<QI", 7, 3),
    bytes([DEFER]) + struct.pack("<QIIQ", 7, 1, 2, 42) + field("421 busy"),
    bytes([DEFER]) + struct.pack("<QIIQ", 9, 0, 7, 2**64 - 1) + field("421 4.7.0 " * 20),
    bytes([DELETE]) + struct.pack("<Q", 7),
    bytes([9]),
    b"",
]
RECORDS += [
    message_record(
        100 + n,
        "mail-%d.example[198.51.100.%d]" % (n, n),
        "bounce-%d@lists.example.org" % n,
        [("r%d@example.net" % i, i % 2, i, None if i % 3 else "450 4.2.0 mailbox busy") for i in range(n)],
        "Subject: %d\r\n\r\n" % n + "line\r\n" * n,
    )
    for n in range(1, 9)
]
RECORDS += [
    bytes([DONE]) + struct.pack("<QI", 2**64 - 1, 2**32 - 1),
    bytes([DEFER]) + struct.pack("<QIIQ", 1, 0, 1, AT) + field("4.4.1 connection timed out \u00e9"),
    bytes([DEFER]) + struct.pack("<QIIQ", 1, 0, 1, AT) + field(b"\xff\xfe"),  # not UTF-8
    bytes([DELETE]) + struct.pack("<Q", 0),
    bytes([DELETE]) + struct.pack("<Q", 7) + b"\x00",  # trailing bytes
    bytes([DONE]) + struct.pack("<Q", 7),  # cut short
    message_record(5, "c", "a@example.org", [("b@example.net", 2, 0, None)], "x"),  # bad flag
    message_record(5, "c", "not an address", [("b@example.net", 0, 0, None)], "x"),
    message_record(5, "c", "a@example.org", [("b@EXAMPLE.NET.", 0, 0, None)], "x"),
    message_record(5, "c", "a@B\u00dcCHER.example", [("b@example.net", 0, 0, None)], "x"),
    message_record(5, "c", "a@example.org", [("b@example.net", 0, 0, None)], "x")[:-1],
    # What the fuzzer found: domains whose form changed when read back (two trailing dots, a
    # Unicode character that maps to a space).
    message_record(5, "c", "a@example.org", [("b@EXAMPLENET..", 0, 0, None)], "x"),
    message_record(5, "c", "a@B\u02dcCHER.example", [("b@example.net", 0, 0, None)], "x"),
]


def frame(payload):
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


FRAMES = [frame(r) for r in RECORDS[:8]]
MORE_FRAMES = [frame(r) for r in RECORDS[10:20]]
WHOLE = b"".join(FRAMES)
SEGMENTS = [
    WHOLE,
    FRAMES[0],
    FRAMES[4] + FRAMES[5],
    WHOLE[: len(WHOLE) - 5],  # a torn tail
    FRAMES[4] + b"\x00" * 64,  # zeros after a crash
    FRAMES[4] + bytes([FRAMES[5][0] ^ 1]) + FRAMES[5][1:] + FRAMES[7],  # a damaged length
    FRAMES[4] + FRAMES[5][:-1] + bytes([FRAMES[5][-1] ^ 1]) + FRAMES[7],  # a checksum mismatch
    FRAMES[0] + b"garbage in the middle" + FRAMES[1] + FRAMES[4],
    frame(RECORDS[8]) + FRAMES[7],  # a frame that does not decode
    struct.pack("<II", 0x7FFFFFFF, 0) + FRAMES[7],
    b"",
    b"\x01\x00\x00",
]
SEGMENTS += [b"".join(MORE_FRAMES[: n + 1]) for n in range(0, 10, 2)]
SEGMENTS += [
    b"".join(MORE_FRAMES[:3]) + b"\xde\xad\xbe\xef" * 4 + b"".join(MORE_FRAMES[3:6]),
    MORE_FRAMES[0] + MORE_FRAMES[1][:20] + MORE_FRAMES[2],  # a frame cut in the middle
    MORE_FRAMES[0] + b"\x00" * 8 + MORE_FRAMES[1],
    b"\x00" * 4096,
    MORE_FRAMES[0][8:] + MORE_FRAMES[1],  # a payload without its header
    WHOLE + WHOLE,
]

# --- DNS ----------------------------------------------------------------------------------------

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT = 1, 2, 5, 6, 12, 15, 16, 28, 41


def name(text):
    out = b""
    for label in text.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def response(qname, qtype, answers=(), authorities=(), rcode=0, ident=0x1A2B, flags=0x8180, edns=True):
    header = struct.pack(
        ">HHHHHH",
        ident,
        flags | rcode,
        1,
        len(answers),
        len(authorities),
        1 if edns else 0,
    )
    out = header + name(qname) + struct.pack(">HH", qtype, 1)
    out += b"".join(answers) + b"".join(authorities)
    if edns:
        out += b"\x00" + struct.pack(">HHIH", OPT, 1232, 0, 0)
    return out


def soa(zone, ttl=3600, minimum=60):
    rdata = name("ns1." + zone) + name("hostmaster." + zone) + struct.pack(">IIIII", 1, 7200, 900, 1209600, minimum)
    return rr(name(zone), SOA, ttl, rdata)


Q = name("example.org")
DNS = [
    response(
        "example.org",
        MX,
        [
            rr(Q, MX, 300, struct.pack(">H", 10) + name("mx1.example.org")),
            rr(Q, MX, 300, struct.pack(">H", 20) + name("mx2.example.org")),
        ],
    ),
    response("example.org", MX, [rr(Q, MX, 300, struct.pack(">H", 0) + b"\x00")]),  # null MX
    # A compression pointer to the question's name (offset 12).
    response("example.org", MX, [rr(b"\xc0\x0c", MX, 60, struct.pack(">H", 5) + b"\x02mx\xc0\x0c")]),
    response("mx.example.org", A, [rr(name("mx.example.org"), A, 3600, bytes([192, 0, 2, 25]))]),
    response(
        "mx.example.org",
        AAAA,
        [rr(name("mx.example.org"), AAAA, 100000, bytes.fromhex("20010db8000000000000000000000025"))],
    ),
    response(
        "www.example.org",
        A,
        [
            rr(name("www.example.org"), CNAME, 20, name("b.example.org")),
            rr(name("b.example.org"), A, 30, bytes([192, 0, 2, 1])),
        ],
    ),
    response("www.example.org", A, [rr(name("www.example.org"), CNAME, 20, name("b.example.org"))]),
    response(
        "a.example.org",
        A,
        [
            rr(name("a.example.org"), CNAME, 20, name("b.example.org")),
            rr(name("b.example.org"), CNAME, 20, name("a.example.org")),
        ],
    ),
    response("nope.example.org", MX, [], [soa("example.org")], rcode=3),
    response("nope.example.org", MX, [], [], rcode=3),
    response("example.org", TXT, [], [soa("example.org", 7200, 600)]),
    response("example.org", A, [], [], rcode=2),
    response(
        "example.org",
        TXT,
        [rr(Q, TXT, 300, b"\x14v=spf1 -all include" + b"\x05x=y;z")],
    ),
    response(
        "2.0.192.zen.example",
        A,
        [rr(name("2.0.192.zen.example"), A, 60, bytes([127, 0, 0, 2]))],
    ),
    response(
        "25.2.0.192.in-addr.arpa",
        PTR,
        [rr(name("25.2.0.192.in-addr.arpa"), PTR, 86400, name("mx.example.org"))],
    ),
    response("example.org", MX, [], [], flags=0x8380),  # truncated
    response("example.org", MX, [], [], edns=False),
    response("example.org", MX, [], [], flags=0x0100),  # a query, not a response
]
DNS += [
    response("example.org", MX, [rr(Q, MX, 300, struct.pack(">H", 10) + name("mx.example.org"))] * 5),
    response("example.org", MX, [rr(name("other.example"), MX, 300, struct.pack(">H", 10) + name("mx"))]),
    response("example.org", A, [rr(Q, A, 0, bytes([192, 0, 2, 1])), rr(Q, A, 4294967295, bytes([192, 0, 2, 2]))]),
    response("example.org", A, [rr(Q, A, 60, bytes([192, 0, 2]))]),  # a short address
    response("EXAMPLE.ORG", MX, [rr(name("example.org"), MX, 300, struct.pack(">H", 10) + name("mx"))]),
    response("example.org", AAAA, [rr(Q, A, 60, bytes([192, 0, 2, 1]))]),  # another type
    response(
        "a.example.org",
        A,
        [rr(name("a%d.example.org" % i if i else "a.example.org"), CNAME, 60, name("a%d.example.org" % (i + 1))) for i in range(10)],
    ),
    response("example.org", MX, [], [soa("example.org", 10, 100000)], rcode=3),
    response("example.org", MX, [], [], rcode=5),
    response("example.org", MX, [], [], rcode=4),
    response("example.org", TXT, [rr(Q, TXT, 60, b"\x00"), rr(Q, TXT, 60, b"\xffabc")]),
    response("example.org", PTR, [rr(Q, PTR, 60, b"\xc0\x0c")]),  # a pointer to itself's name
    response("example.org", MX, [rr(b"\xc0\x1c", MX, 60, b"\x00\x01\xc0\x1c")]),  # a pointer loop
]
DNS += [DNS[0][:n] for n in (11, 12, 20, 40)]

# Messages with SMTPUTF8 and DSN parameters (the record kind of 9 and 10).
RECORDS += [
    extended_record(
        11,
        "j\u00f6s@example.org",
        [("b@example.net", 0, 0, None), ("r\u00e9ka@example.net", 0, 0, None)],
        1,
        2,
        "QQ314159",
        [(6, "rfc822;b@example.net"), (0, None)],
        "Subject: hi\r\n\r\nbody\r\n",
    ),
    extended_record(12, "a@example.org", [("b@example.net", 0, 0, None)], 0, 0, None, [], "x"),
]

write("command", COMMANDS)
write("data", DATA)
write("message", MESSAGES)
write("smtp_reply", REPLIES)
write("ehlo", EHLO)
write("auth", AUTH)
write("admin_request", ADMIN)
write("redis_resp", RESP)
write("aliases_map", ALIASES)
write("config", CONFIG)
write("journal_record", RECORDS)
write("journal_segment", SEGMENTS)
write("dns", DNS)
