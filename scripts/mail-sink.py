#!/usr/bin/env python3
"""A local SMTP sink for trying Petrel without the internet: it accepts every message on
127.0.0.1:2525 (or --listen HOST:PORT), prints one line per message (envelope and Subject) and
keeps nothing. Pair it with config/local-sink.toml, which relays all mail here:

    scripts/dev sink                                        # this, in one terminal
    PETREL_CONFIG=config/local-sink.toml scripts/dev run    # Petrel, in another

Only the Python standard library; stops on Ctrl-C.
"""
import argparse
import asyncio
import email.parser
import email.policy
import sys

MAX_LINE = 4096
MAX_MESSAGE = 50 * 1024 * 1024


async def session(reader, writer):
    async def reply(text):
        writer.write((text + "\r\n").encode())
        await writer.drain()

    mail_from, rcpt_to = None, []
    await reply("220 mail-sink ESMTP")
    try:
        while True:
            line = await reader.readuntil(b"\n")
            if len(line) > MAX_LINE:
                await reply("500 5.5.2 Line too long")
                continue
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                await reply("250-mail-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8"
                            if verb == "EHLO" else "250 mail-sink")
            elif verb == "MAIL":
                mail_from, rcpt_to = command[10:].split(">")[0].lstrip("<"), []
                await reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpt_to.append(command[8:].split(">")[0].lstrip("<"))
                await reply("250 2.1.5 Ok")
            elif verb == "DATA":
                await reply("354 End data with <CR><LF>.<CR><LF>")
                data = bytearray()
                while True:
                    chunk = await reader.readuntil(b"\n")
                    if chunk in (b".\r\n", b".\n"):
                        break
                    if len(data) < MAX_MESSAGE:
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(bytes(data))
                print(f"message from <{mail_from}> to {', '.join('<' + r + '>' for r in rcpt_to)}: "
                      f"{headers.get('Subject', '(no subject)')} ({len(data)} bytes)", flush=True)
                mail_from, rcpt_to = None, []
                await reply("250 2.0.0 Ok: delivered to the sink")
            elif verb == "RSET":
                mail_from, rcpt_to = None, []
                await reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                await reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await reply("221 2.0.0 Bye")
                break
            else:
                await reply("502 5.5.2 Command not implemented")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:2525", metavar="HOST:PORT")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = await asyncio.start_server(session, host.strip("[]") or "127.0.0.1", int(port), limit=1 << 20)
    bound = server.sockets[0].getsockname()
    print(f"mail-sink: listening on {bound[0]}:{bound[1]}; every message is accepted and printed, "
          "none is kept", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
