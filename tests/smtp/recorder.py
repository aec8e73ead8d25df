#!/usr/bin/python3
"""A recording SMTP server for twofold's tests (aiosmtpd).

Usage: recorder.py PORT OUT MODE [CERT KEY] [USER:PASSWORD]

MODE: plain (no STARTTLS offered), starttls (STARTTLS required before
anything else), tls (implicit TLS), silent (accepts, never greets),
reject (plain, and every recipient refused with a 550 that quotes the
address, as Postfix words it).
Every command a client sends is appended to OUT.commands (one line each,
AUTH's data elided); every accepted message to OUT as one JSON line.
Prints READY once listening.
"""
import asyncio
import json
import socket
import ssl
import sys
import time

port, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rest = sys.argv[4:]
cert = key = None
if mode in ("starttls", "tls"):
    cert, key = rest[0], rest[1]
    rest = rest[2:]
creds = rest[0].split(":", 1) if rest else None


def log_command(line):
    with open(out + ".commands", "a") as f:
        f.write(line + "\n")


if mode == "silent":
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    print("READY", flush=True)
    held = []
    while True:
        c, _ = srv.accept()
        log_command("CONNECT")
        held.append(c)  # never greeted, never closed

import logging
import warnings

logging.getLogger("mail.log").setLevel(logging.CRITICAL)
warnings.simplefilter("ignore")

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if mode == "reject":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rec = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf8", "replace"),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth": session.auth_data if isinstance(session.auth_data, str) else None,
        }
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return "250 OK"


class LoggingSMTP(SMTP):
    async def smtp_EHLO(self, arg):
        log_command("EHLO")
        return await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg):
        log_command("HELO")
        return await super().smtp_HELO(arg)

    async def smtp_STARTTLS(self, arg):
        log_command("STARTTLS")
        return await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        log_command("AUTH " + (arg or "").split(" ")[0])
        return await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        log_command("MAIL")
        return await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        log_command("RCPT")
        return await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg):
        log_command("DATA")
        return await super().smtp_DATA(arg)

    async def smtp_QUIT(self, arg):
        log_command("QUIT")
        return await super().smtp_QUIT(arg)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and creds is not None
          and auth_data.login.decode() == creds[0]
          and auth_data.password.decode() == creds[1])
    log_command("AUTH-RESULT " + ("ok" if ok else "refused"))
    return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)


class Ctl(Controller):
    def factory(self):
        return LoggingSMTP(self.handler, **self.SMTP_kwargs)


kwargs = {}
ctx = None
if cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
if mode == "starttls":
    kwargs.update(tls_context=ctx, require_starttls=True)
if creds:
    kwargs.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=(mode != "plain"))
ctl = Ctl(Recorder(), hostname="127.0.0.1", port=port,
          ssl_context=ctx if mode == "tls" else None,
          server_hostname="localhost", ready_timeout=10, **kwargs)
ctl.start()
print("READY", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
