"""Scriptable SMTP server for Petrel's system tests.

The C++ SMTP client delivers to this server instead of a real MX. Its behaviour is scripted by the
recipient's local part (tempfail, permfail, drop-data, ...) and by command-line options (STARTTLS,
SIZE, greeting, connection limits), so tests can provoke every failure mode a remote MTA has.
Everything it receives is recorded and exposed, together with connection statistics, on a small
HTTP control interface (GET /messages, GET /stats, POST /reset, POST /config).

The SMTP side is written by hand on asyncio streams rather than with aiosmtpd so that the tests
see the raw protocol: pipelined commands, dot-stuffing, bare CR/LF in DATA and exact bytes.

Usage:
  /usr/bin/python3 tests/tools/smtp_server.py --listen 127.0.0.2:2525 [--listen ...]
      --control 127.0.0.1:0 --ready-file PATH [options]
"""
import argparse
import asyncio
import base64
import dataclasses
import functools
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from http.server import ThreadingHTTPServer

from control_http import JsonHandler, parse_address  # noqa: E402

COMMAND_LINE_LIMIT = 4096
READ_CHUNK = 65536
MAX_RECIPIENTS = 1000
MAX_ERRORS = 20            # a client this confused is closed rather than answered forever
MAX_TRANSCRIPT = 500       # commands kept per connection record
STALL_DATA_SECONDS = 3600
TLS_HANDSHAKE_TIMEOUT = 10

# Checked in this order, so "tempfail-N-" is seen before the plain "tempfail" prefix: a rule
# with a count applies to the first N attempts for that address only, then it is accepted.
COUNTED_RULE = re.compile(r"(tempfail|drop-rcpt|drop-data|stall-data|rcpt421|garbage|longreply)-(\d+)-")
RECIPIENT_RULES = ("tempfail", "permfail", "drop-rcpt", "datafail", "datatemp", "drop-data",
                   "stall-data", "rcpt421", "garbage", "longreply")
LONG_REPLY_OCTETS = 5000
PATH_ARGUMENT = re.compile(r"(?i)(FROM|TO):\s*<([^<>]*)>\s*(.*)$")


class PeerClosed(Exception):
    """The client closed its side of the connection."""


class LineTooLong(Exception):
    """A line exceeded its limit; it has been skipped up to and including its LF."""

    def __init__(self, ended_crlf):
        super().__init__()
        self.ended_crlf = ended_crlf


@dataclasses.dataclass
class Config:
    """Server behaviour. Each connection takes a copy when it opens, so /config affects only new
    connections."""
    hostname: str = "mx.test"
    greeting: str | None = None
    stall_greeting: float = 0.0
    require_tls: bool = False
    max_connections: int | None = None
    size: int = 10485760
    pipelining: bool = True
    eightbitmime: bool = True
    smtputf8: bool = True
    ehlo: bool = True
    starttls: bool = False
    idle_timeout: float = 300.0
    # "user:password": AUTH PLAIN is offered, and MAIL needs it (530 5.7.0 until then).
    auth: str | None = None
    # The next N connections are closed as soon as they are accepted, before any greeting.
    drop_before_greeting: int = 0
    # The next N STARTTLS commands are answered 220, then garbage comes instead of a TLS
    # handshake and the connection closes (a handshake failure).
    broken_tls: int = 0
    # Counted faults by stage, shared by all connections: {"MAIL": 1} closes the connection on the
    # next MAIL command without a reply; {"DATA-BODY": 1} closes it once the first line of the
    # next message's content has arrived. reset_at is "the connection reset mid-MAIL/mid-DATA".
    reset_at: dict = dataclasses.field(default_factory=dict)
    # {"greeting": 1, "EHLO": 1, "MAIL": 1, "RCPT": 1, "DATA": 1}: the next reply at that stage
    # is never sent (the server waits until the client gives up), to pass each client timeout.
    stall_at: dict = dataclasses.field(default_factory=dict)

    # The fields POST /config may change, with the JSON types each accepts.
    RUNTIME = {
        "greeting": (str, type(None)),
        "stall_greeting": (int, float),
        "require_tls": (bool,),
        "max_connections": (int, type(None)),
        "size": (int,),
        "drop_before_greeting": (int,),
        "broken_tls": (int,),
        "reset_at": (dict,),
        "stall_at": (dict,),
    }
    STAGES = {"reset_at": ("MAIL", "RCPT", "DATA-BODY"),
              "stall_at": ("greeting", "EHLO", "MAIL", "RCPT", "DATA")}

    def update(self, changes):
        """Apply a /config body; raises ValueError without changing anything if it is invalid."""
        if not isinstance(changes, dict):
            raise ValueError("config body must be a JSON object")
        for key, value in changes.items():
            allowed = self.RUNTIME.get(key)
            if allowed is None:
                raise ValueError(f"unknown config key {key!r}")
            # bool is an int subclass; only require_tls may be a bool.
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ValueError(f"bad value for {key!r}: {value!r}")
            for stage, count in (value.items() if isinstance(value, dict) else ()):
                if stage not in self.STAGES[key] or not isinstance(count, int) or isinstance(count, bool):
                    raise ValueError(f"bad stage or count in {key!r}: {stage!r}: {count!r}")
        for key, value in changes.items():
            setattr(self, key, dict(value) if isinstance(value, dict) else value)

    def take(self, key, stage):
        """Counts one use of a counted fault; True if it applies now."""
        counts = getattr(self, key)
        if counts.get(stage, 0) <= 0:
            return False
        counts[stage] -= 1
        return True

    def runtime_view(self):
        return {key: getattr(self, key) for key in self.RUNTIME}


class State:
    """Everything the control interface reports. Only touched from the event loop thread."""

    def __init__(self, listen_labels):
        self.listen_labels = list(listen_labels)
        self.active = set()
        # Connection and message numbers never restart, so records made before and after a
        # /reset cannot be confused with one another.
        self.next_connection = 1
        self.next_message = 1
        self.reset()

    def reset(self):
        self.messages = []
        self.connection_records = []
        self.connections_total = 0
        self.max_concurrent = len(self.active)
        self.per_listen = {label: {"connections_total": 0,
                                   "max_concurrent_connections": self._current_on(label)}
                           for label in self.listen_labels}
        self.per_peer = {}
        self.commands_total = 0
        self.quit_count = 0
        self.tempfail_attempts = {}

    def _current_on(self, label):
        return sum(1 for session in self.active if session.listen == label)

    def open(self, session):
        session.number = session.record["connection"] = self.next_connection
        self.next_connection += 1
        self.active.add(session)
        self.connections_total += 1
        self.max_concurrent = max(self.max_concurrent, len(self.active))
        listen = self.per_listen[session.listen]
        listen["connections_total"] += 1
        listen["max_concurrent_connections"] = max(listen["max_concurrent_connections"],
                                                   self._current_on(session.listen))
        self.per_peer[session.peer] = self.per_peer.get(session.peer, 0) + 1
        self.connection_records.append(session.record)

    def close(self, session):
        self.active.discard(session)
        session.record["closed_at"] = time.time()

    def add_message(self, fields):
        message = {"id": self.next_message, **fields}
        self.next_message += 1
        self.messages.append(message)
        return message["id"]

    def count_tempfail_attempt(self, address):
        self.tempfail_attempts[address] = self.tempfail_attempts.get(address, 0) + 1
        return self.tempfail_attempts[address]

    def stats(self):
        return {
            "connections_total": self.connections_total,
            "current_connections": len(self.active),
            "max_concurrent_connections": self.max_concurrent,
            "per_listen": {label: dict(values, current_connections=self._current_on(label))
                           for label, values in self.per_listen.items()},
            "connections_per_peer": dict(self.per_peer),
            "messages_total": len(self.messages),
            "commands_total": self.commands_total,
            "quit_count": self.quit_count,
            "connections": [dict(record, commands=list(record["commands"]))
                            for record in self.connection_records],
        }


class LineReader:
    """Buffered reader that hands out LF-terminated lines one at a time, so commands pipelined
    into one packet are processed in order and with bounded memory."""

    def __init__(self, reader):
        self.reader = reader
        self.buffer = bytearray()

    async def readline(self, limit):
        skipping = False
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                if skipping or len(line) > limit:
                    raise LineTooLong(line.endswith(b"\r\n"))
                return line
            if len(self.buffer) > limit:
                skipping = True
                # The last byte stays: it may be the CR of the line's CRLF.
                del self.buffer[:-1]
            await self.fill()

    async def fill(self):
        chunk = await self.reader.read(READ_CHUNK)
        if not chunk:
            raise PeerClosed()
        self.buffer += chunk

    def complete_lines(self):
        return self.buffer.count(b"\n")


class Session:
    """One SMTP connection."""

    def __init__(self, app, reader, writer, listen):
        self.app = app
        self.state = app.state
        self.config = dataclasses.replace(app.config)
        self.reader = reader
        self.writer = writer
        self.lines = LineReader(reader)
        self.listen = listen
        # peername is None if the client is already gone.
        self.peer, self.peer_port = (writer.get_extra_info("peername") or ("?", 0))[:2]
        self.number = None
        self.helo = None
        self.esmtp = False
        self.tls = False
        self.tls_version = None
        self.authenticated = None   # the user name, after a successful AUTH
        self.errors = 0
        self.messages = 0
        self.reset_transaction()
        self.record = {"connection": None, "peer": self.peer, "peer_port": self.peer_port,
                       "listen": listen, "opened_at": time.time(), "closed_at": None,
                       "messages": 0, "tls": False, "helo": None, "rejected": False,
                       "max_pipelined_commands": 0, "commands": []}

    def reset_transaction(self):
        self.mail_from = None
        self.mail_params = {}
        self.recipients = []   # (address, rule) of accepted recipients

    async def run(self):
        self.state.open(self)
        try:
            await self.converse()
        except (PeerClosed, ConnectionError, ssl.SSLError):
            pass
        except TimeoutError:
            await self.send_quietly("421 4.4.2 Error: timeout exceeded")
        except Exception:
            traceback.print_exc()
        finally:
            self.state.close(self)
            self.writer.close()

    async def send_quietly(self, line):
        try:
            await self.reply(line)
        except (ConnectionError, ssl.SSLError):
            pass

    async def reply(self, *lines):
        self.writer.write(b"".join(line.encode() + b"\r\n" for line in lines))
        await self.writer.drain()

    async def reply_multiline(self, code, texts):
        await self.reply(*[f"{code}-{text}" for text in texts[:-1]], f"{code} {texts[-1]}")

    async def pause(self, seconds):
        """Wait `seconds`; returns False early if the peer closes (or floods us) meanwhile.
        Whatever the peer sends is kept for the command loop."""
        try:
            async with asyncio.timeout(seconds):
                while len(self.lines.buffer) <= COMMAND_LINE_LIMIT * 16:
                    await self.lines.fill()
                return False
        except TimeoutError:
            return True
        except (PeerClosed, ConnectionError, ssl.SSLError):
            return False

    async def next_line(self, limit):
        async with asyncio.timeout(self.config.idle_timeout):
            return await self.lines.readline(limit)

    async def converse(self):
        config = self.config
        if config.drop_before_greeting > 0:
            self.app.config.drop_before_greeting -= 1
            return
        admitted = sum(1 for session in self.state.active if not session.record["rejected"]) - 1
        if config.max_connections is not None and admitted >= config.max_connections:
            self.record["rejected"] = True
            await self.reply("421 4.7.0 Too many connections, try again later")
            return
        if config.stall_greeting > 0 and not await self.pause(config.stall_greeting):
            return
        if self.app.config.take("stall_at", "greeting"):
            self.record["stalled"] = "greeting"
            await self.pause(STALL_DATA_SECONDS)
            return
        greeting = config.greeting or f"220 {config.hostname} ESMTP Petrel test server"
        await self.reply(greeting)
        if not greeting.startswith("220"):
            return
        while True:
            try:
                # Lines still buffered after this one were sent before we answered: pipelining.
                line = await self.next_line(COMMAND_LINE_LIMIT)
                self.record["max_pipelined_commands"] = max(
                    self.record["max_pipelined_commands"], 1 + self.lines.complete_lines())
            except LineTooLong:
                self.state.commands_total += 1
                if not await self.error("500 5.5.2 Line too long"):
                    return
                continue
            if not await self.dispatch(line):
                return

    async def error(self, reply):
        """Answer an erroneous command; returns False once the client has made too many."""
        self.errors += 1
        if self.errors > MAX_ERRORS:
            await self.reply("421 4.7.0 Too many errors")
            return False
        await self.reply(reply)
        return True

    async def dispatch(self, line):
        """Handle one command line; returns False when the connection must close."""
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        verb, _, argument = text.partition(" ")
        verb = verb.upper()
        self.state.commands_total += 1
        if len(self.record["commands"]) < MAX_TRANSCRIPT:
            self.record["commands"].append(text[:512])
        handler = {
            "EHLO": self.cmd_ehlo, "HELO": self.cmd_helo, "STARTTLS": self.cmd_starttls,
            "MAIL": self.cmd_mail, "RCPT": self.cmd_rcpt, "DATA": self.cmd_data,
            "RSET": self.cmd_rset, "NOOP": self.cmd_noop, "QUIT": self.cmd_quit,
            "AUTH": self.cmd_auth,
        }.get(verb)
        if handler is None:
            return await self.error("500 5.5.2 Syntax error")
        if self.app.config.take("reset_at", verb):
            self.record["reset"] = verb
            return False
        if self.app.config.take("stall_at", verb):
            self.record["stalled"] = verb
            await self.pause(STALL_DATA_SECONDS)
            return False
        return await handler(argument.strip())

    async def cmd_ehlo(self, argument):
        config = self.config
        if not config.ehlo:
            return await self.error("502 5.5.1 EHLO not supported")
        if not argument:
            return await self.error("501 5.5.4 Syntax: EHLO hostname")
        self.helo, self.esmtp = argument, True
        self.record["helo"] = argument
        self.reset_transaction()
        keywords = [config.hostname]
        if config.pipelining:
            keywords.append("PIPELINING")
        keywords.append(f"SIZE {config.size}")
        if config.eightbitmime:
            keywords.append("8BITMIME")
        if config.smtputf8:
            keywords.append("SMTPUTF8")
        if config.starttls and not self.tls:
            keywords.append("STARTTLS")
        if config.auth:
            keywords.append("AUTH PLAIN")
        keywords.append("ENHANCEDSTATUSCODES")
        await self.reply_multiline("250", keywords)
        return True

    async def cmd_helo(self, argument):
        if not argument:
            return await self.error("501 5.5.4 Syntax: HELO hostname")
        self.helo, self.esmtp = argument, False
        self.record["helo"] = argument
        self.reset_transaction()
        await self.reply(f"250 {self.config.hostname}")
        return True

    async def cmd_starttls(self, argument):
        if not self.config.starttls:
            return await self.error("502 5.5.1 STARTTLS not supported")
        if self.tls:
            return await self.error("503 5.5.1 TLS already active")
        if argument:
            return await self.error("501 5.5.4 Syntax: STARTTLS")
        await self.reply("220 2.0.0 Ready to start TLS")
        if self.app.config.broken_tls > 0:
            self.app.config.broken_tls -= 1
            self.record["broken_tls"] = True
            self.writer.write(b"\x15\x03\x03\x00\x02\x02\x28 this is not a TLS server hello\r\n")
            await self.writer.drain()
            return False
        # RFC 3207: anything pipelined after STARTTLS was sent in clear text and must be ignored.
        self.lines.buffer.clear()
        try:
            await self.writer.start_tls(self.app.ssl_context,
                                        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except OSError:   # includes SSL errors and the handshake timeout
            return False
        self.tls = True
        self.tls_version = self.writer.get_extra_info("ssl_object").version()
        self.record["tls"] = True
        # RFC 3207: the client must start over with EHLO (and AUTH).
        self.helo, self.esmtp, self.authenticated = None, False, None
        self.reset_transaction()
        return True

    async def cmd_auth(self, argument):
        """AUTH PLAIN with an initial response only (RFC 4954, RFC 4616)."""
        if not self.config.auth:
            return await self.error("502 5.5.1 AUTH not supported")
        if self.helo is None or not self.esmtp:
            return await self.error("503 5.5.1 Error: send EHLO first")
        if self.authenticated is not None:
            return await self.error("503 5.5.1 Already authenticated")
        mechanism, _, initial = argument.partition(" ")
        if mechanism.upper() != "PLAIN" or not initial:
            return await self.error("504 5.5.4 Only AUTH PLAIN with an initial response")
        try:
            _, user, password = base64.b64decode(initial, validate=True).decode().split("\0")
        except (ValueError, UnicodeDecodeError):
            return await self.error("501 5.5.2 Cannot decode the AUTH response")
        if f"{user}:{password}" != self.config.auth:
            await self.reply("535 5.7.8 Authentication credentials invalid")
            return True
        self.authenticated = user
        self.record["authenticated"] = user
        await self.reply("235 2.7.0 Authentication successful")
        return True

    def parse_path(self, argument, keyword):
        """(address, params) from 'FROM:<a> K=V ...', or None if malformed."""
        match = PATH_ARGUMENT.match(argument)
        if not match or match.group(1).upper() != keyword:
            return None
        params = {}
        for word in match.group(3).split():
            key, equals, value = word.partition("=")
            params[key.upper()] = value if equals else True
        return match.group(2), params

    def unsupported_mail_param(self, params):
        """The first MAIL parameter we did not advertise, as the client wrote it, or None."""
        config = self.config
        for key, value in params.items():
            written = key if value is True else f"{key}={value}"
            if not self.esmtp:
                return written   # parameters are ESMTP; a HELO client must not send any
            if key == "SIZE" and value is not True and value.isdigit():
                continue
            if key == "BODY" and (value == "7BIT" or (value == "8BITMIME" and config.eightbitmime)):
                continue
            if key == "SMTPUTF8" and value is True and config.smtputf8:
                continue
            return written
        return None

    async def cmd_mail(self, argument):
        if self.helo is None:
            return await self.error("503 5.5.1 Error: send HELO/EHLO first")
        if self.config.require_tls and not self.tls:
            return await self.error("530 5.7.0 Must issue a STARTTLS command first")
        if self.config.auth and self.authenticated is None:
            return await self.error("530 5.7.0 Authentication required")
        if self.mail_from is not None:
            return await self.error("503 5.5.1 Bad sequence of commands")
        parsed = self.parse_path(argument, "FROM")
        if parsed is None:
            return await self.error("501 5.5.4 Syntax: MAIL FROM:<address>")
        address, params = parsed
        unsupported = self.unsupported_mail_param(params)
        if unsupported is not None:
            return await self.error(f"555 5.5.4 Unsupported option: {unsupported}")
        if "SIZE" in params and int(params["SIZE"]) > self.config.size:
            await self.reply("552 5.3.4 Message size exceeds fixed maximum message size")
            return True
        self.mail_from, self.mail_params = address, params
        await self.reply("250 2.1.0 Ok")
        return True

    def recipient_rule(self, address):
        """The scripted behaviour for a recipient, or None for a plain accept."""
        local = (address.rpartition("@")[0] or address).lower()
        counted = COUNTED_RULE.match(local)
        if counted:
            attempts = self.state.count_tempfail_attempt(address)
            return counted.group(1) if attempts <= int(counted.group(2)) else None
        return next((rule for rule in RECIPIENT_RULES if local.startswith(rule)), None)

    async def cmd_rcpt(self, argument):
        if self.mail_from is None:
            return await self.error("503 5.5.1 Bad sequence of commands")
        parsed = self.parse_path(argument, "TO")
        if parsed is None or not parsed[0]:
            return await self.error("501 5.5.4 Syntax: RCPT TO:<address>")
        address, params = parsed
        if params:
            return await self.error(f"555 5.5.4 Unsupported option: {next(iter(params))}")
        if len(self.recipients) >= MAX_RECIPIENTS:
            await self.reply("452 4.5.3 Too many recipients")
            return True
        rule = self.recipient_rule(address)
        if rule == "drop-rcpt":
            return False
        if rule == "rcpt421":
            await self.reply("421 4.3.2 Service shutting down, closing transmission channel")
            return False
        if rule == "garbage":
            await self.reply("hello? \x01\x02 this is not SMTP")
            return True
        if rule == "longreply":
            await self.reply("250 " + "x" * LONG_REPLY_OCTETS)
            return True
        if rule == "tempfail":
            await self.reply("451 4.3.0 Temporary failure, try again later")
        elif rule == "permfail":
            await self.reply(f"550 5.1.1 <{address}>: Recipient address rejected: User unknown")
        else:
            self.recipients.append((address, rule))
            await self.reply("250 2.1.5 Ok")
        return True

    async def read_body(self):
        """Read DATA up to the terminating <CRLF>.<CRLF>; returns (unstuffed bytes, bare_lf,
        bare_cr, oversize). Only CRLF ends a line, for the terminator and for dot-unstuffing
        alike, so that a smuggled "\\n.\\n" or "\\n.\\r\\n" stays inside the message, byte for
        byte, where tests can see it."""
        limit = self.config.size
        body = bytearray()
        bare_lf = bare_cr = oversize = False
        size = 0
        previous_ended_crlf = True   # the CRLF of the DATA command itself
        while True:
            try:
                line = await self.next_line(limit + COMMAND_LINE_LIMIT)
            except LineTooLong as too_long:
                oversize = True
                previous_ended_crlf = too_long.ended_crlf
                continue
            at_line_start = previous_ended_crlf
            if line == b".\r\n" and at_line_start:
                return bytes(body), bare_lf, bare_cr, oversize
            previous_ended_crlf = line.endswith(b"\r\n")
            content = line[:-2] if previous_ended_crlf else line[:-1]
            bare_lf = bare_lf or not previous_ended_crlf
            bare_cr = bare_cr or b"\r" in content
            if at_line_start and line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > limit:
                oversize = True
                body.clear()
            elif not oversize:
                body += line

    async def cmd_data(self, argument):
        if self.mail_from is None:
            return await self.error("503 5.5.1 Bad sequence of commands")
        if not self.recipients:
            return await self.error("554 5.5.1 Error: no valid recipients")
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        if self.app.config.take("reset_at", "DATA-BODY"):
            await self.next_line(self.config.size + COMMAND_LINE_LIMIT)
            self.record["reset"] = "DATA-BODY"
            return False
        body, bare_lf, bare_cr, oversize = await self.read_body()
        rules = {rule for _, rule in self.recipients}
        if "drop-data" in rules and not oversize:
            # Accepted, and the connection lost before the reply (RFC 5321 4.1.1.4): the client
            # cannot know, and sends it again. Recorded, so that tests see the duplicate.
            self.messages += 1
            self.state.add_message({
                "connection": self.number, "index_in_connection": self.messages, "peer": self.peer,
                "mail_from": self.mail_from, "rcpt_to": [address for address, _ in self.recipients],
                "data_b64": base64.b64encode(body).decode(), "data": body.decode("utf-8", "replace"),
                "size": len(body), "reply_lost": True, "received_at": time.time()})
            return False
        if "stall-data" in rules and not oversize and not await self.pause(STALL_DATA_SECONDS):
            return False
        if oversize:
            await self.reply("552 5.3.4 Message size exceeds fixed maximum message size")
        elif "datafail" in rules:
            await self.reply("554 5.6.0 Message rejected")
        elif "datatemp" in rules:
            await self.reply("451 4.3.0 Try again later")
        else:
            self.messages += 1
            self.record["messages"] = self.messages
            message_id = self.state.add_message({
                "connection": self.number, "index_in_connection": self.messages,
                "peer": self.peer, "peer_port": self.peer_port, "listen": self.listen,
                "helo": self.helo, "esmtp": self.esmtp, "tls": self.tls,
                "authenticated": self.authenticated,
                "tls_version": self.tls_version, "mail_from": self.mail_from,
                "mail_params": self.mail_params,
                "rcpt_to": [address for address, _ in self.recipients],
                "data_b64": base64.b64encode(body).decode(),
                "data": body.decode("utf-8", "replace"), "size": len(body),
                "bare_lf": bare_lf, "bare_cr": bare_cr, "received_at": time.time(),
            })
            await self.reply(f"250 2.0.0 Ok: queued as {message_id}")
        self.reset_transaction()
        return True

    async def cmd_rset(self, argument):
        self.reset_transaction()
        await self.reply("250 2.0.0 Ok")
        return True

    async def cmd_noop(self, argument):
        await self.reply("250 2.0.0 Ok")
        return True

    async def cmd_quit(self, argument):
        self.state.quit_count += 1
        await self.reply("221 2.0.0 Bye")
        return False


class SmtpApp:
    """The listeners, their shared state, and shutdown."""

    def __init__(self, config, ssl_context, listen_addresses):
        self.config = config
        self.ssl_context = ssl_context
        self.listen_addresses = listen_addresses
        self.listeners = []
        self.tasks = set()
        self.state = None
        self.loop = None

    async def start(self):
        # Bind every socket first: the State needs the actual ports (for port 0) before the
        # first connection can arrive.
        sockets = []
        for host, port in self.listen_addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sockets.append(socket.create_server((host, port), family=family))
        labels = [format_address(sock.getsockname()[0], sock.getsockname()[1])
                  for sock in sockets]
        self.state = State(labels)
        self.loop = asyncio.get_running_loop()
        for sock, label in zip(sockets, labels):
            self.listeners.append(await asyncio.start_server(
                functools.partial(self.handle, listen=label), sock=sock))
        return labels

    async def handle(self, reader, writer, listen):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await Session(self, reader, writer, listen).run()
        finally:
            self.tasks.discard(task)

    async def stop(self):
        for server in self.listeners:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)

    def call(self, function, *args):
        """Run `function` on the event loop from another thread (the control server) and return
        its result, so State never needs a lock."""
        async def run():
            return function(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def update_config(self, changes):
        self.config.update(changes)
        return {"ok": True, "config": self.config.runtime_view()}

    def reset(self):
        self.state.reset()
        return {"ok": True}


class ControlHandler(JsonHandler):
    """GET /messages, GET /stats, POST /reset, POST /config."""

    def do_GET(self):
        app = self.server.app
        if self.path == "/messages":
            self.send_json(200, app.call(lambda: list(app.state.messages)))
        elif self.path == "/stats":
            self.send_json(200, app.call(lambda: app.state.stats()))
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        app = self.server.app
        if self.path == "/reset":
            self.send_json(200, app.call(app.reset))
        elif self.path == "/config":
            try:
                self.send_json(200, app.call(app.update_config, self.read_json()))
            except ValueError as error:
                self.send_json(400, {"error": str(error)})
        else:
            self.send_json(404, {"error": "not found"})



def format_address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_ready_file(path, payload):
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle)
    os.replace(temporary, path)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_address, action="append", required=True,
                        help="HOST:PORT to accept SMTP on (repeatable; port 0 picks one)")
    parser.add_argument("--control", type=parse_address, required=True,
                        help="HOST:PORT of the HTTP control interface")
    parser.add_argument("--ready-file", required=True,
                        help="written with the bound ports once everything listens")
    parser.add_argument("--hostname", default="mx.test")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--no-starttls", action="store_true")
    parser.add_argument("--require-tls", action="store_true")
    parser.add_argument("--size", type=int, default=10485760)
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument("--no-8bitmime", action="store_true")
    parser.add_argument("--no-smtputf8", action="store_true")
    parser.add_argument("--no-ehlo", action="store_true")
    parser.add_argument("--greeting", help='whole greeting line, e.g. "421 4.3.2 Service not '
                                           'available"; the connection closes unless it is 220')
    parser.add_argument("--stall-greeting", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--max-connections", type=int)
    parser.add_argument("--auth", metavar="USER:PASSWORD",
                        help="offer AUTH PLAIN and require it before MAIL")
    parser.add_argument("--idle-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="close a connection after this long without a line from the client")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


async def serve(args):
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    config = Config(
        hostname=args.hostname, greeting=args.greeting, stall_greeting=args.stall_greeting,
        require_tls=args.require_tls, max_connections=args.max_connections, size=args.size,
        pipelining=not args.no_pipelining, eightbitmime=not args.no_8bitmime,
        smtputf8=not args.no_smtputf8, ehlo=not args.no_ehlo,
        starttls=ssl_context is not None and not args.no_starttls,
        idle_timeout=args.idle_timeout, auth=args.auth)
    app = SmtpApp(config, ssl_context, args.listen)
    labels = await app.start()

    control = ThreadingHTTPServer(args.control, ControlHandler)
    control.daemon_threads = True
    control.app = app
    # A short poll interval keeps the shutdown() below quick.
    threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    write_ready_file(args.ready_file, {"control_port": control.server_address[1],
                                       "listen": labels})
    await stop.wait()
    await app.stop()
    await asyncio.to_thread(control.shutdown)
    control.server_close()


def main(argv=None):
    asyncio.run(serve(parse_arguments(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
