"""Serve a local service to its own user only: the service in a private network namespace, a relay in front.

DynamoDB Local has no bind-address option (it listens on every interface and accepts any credentials), and
moto's server answers anyone who reaches it (its Secrets Manager hands out the local secrets). So each runs
inside an unprivileged user + network namespace (`unshare -rn`), where only its own loopback exists, and is
reached through a Unix socket in a 0700 folder (`inner`). Outside, `outer` listens on 127.0.0.1 only and
relays a TCP connection to that socket after checking, from /proc/net/tcp, that the connecting socket
belongs to this user: another machine cannot reach the service, and another local user is refused.

    python -m rewardgate_ops.private_relay outer --port P --socket DIR/s -- COMMAND...   (spawns `inner`)
    python -m rewardgate_ops.private_relay inner --port Q --socket DIR/s -- COMMAND...   (in the namespace)

`available()` says whether this machine allows unprivileged namespaces (Ubuntu 24.04's AppArmor may not).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CHUNK = 64 * 1024


def available() -> bool:
    """Whether `unshare -rn` works here (an unprivileged user + network namespace)."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)  # noqa: S607
    return done.returncode == 0


def loopback_up() -> None:
    """Bring `lo` up (a new network namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"\0" * 14)
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b"\0" * 14))


def _hex_endpoint(host: str, port: int) -> str:
    packed = socket.inet_aton(host)
    return f"{struct.unpack('<I', packed)[0]:08X}:{port:04X}"


def socket_owner(local: tuple[str, int], remote: tuple[str, int], table: str = "/proc/net/tcp") -> int | None:
    """The uid owning the TCP socket whose local end is `local` and remote end `remote` (None if not found)."""
    want_local, want_remote = _hex_endpoint(*local), _hex_endpoint(*remote)
    with contextlib.suppress(OSError), open(table) as lines:
        next(lines)
        for line in lines:
            fields = line.split()
            if fields[1] == want_local and fields[2] == want_remote:
                return int(fields[7])
    return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                  server: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    await asyncio.gather(_pipe(client[0], server[1]), _pipe(server[0], client[1]))


async def _outer(port: int, path: str) -> None:
    uid = os.getuid()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, mine = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        if socket_owner((peer[0], peer[1]), (mine[0], mine[1])) != uid:
            writer.close()  # another user's process (or one we cannot identify): nothing served
            return
        try:
            server = await asyncio.open_unix_connection(path)
        except OSError:
            writer.close()
            return
        await _splice((reader, writer), server)

    listener = await asyncio.start_server(accept, "127.0.0.1", port, backlog=512)
    async with listener:
        await listener.serve_forever()


async def _inner(port: int, path: str) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await _splice((reader, writer), server)

    old = os.umask(0o177)  # the socket is created 0600
    try:
        listener = await asyncio.start_unix_server(accept, path, backlog=512)
    finally:
        os.umask(old)
    async with listener:
        await listener.serve_forever()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_inner(port: int, path: str, command: list[str]) -> int:
    """In the namespace: loopback up, start the service, then serve the Unix socket once it listens."""
    loopback_up()
    service = subprocess.Popen(command)  # noqa: S603
    while not _port_open(port):
        if service.poll() is not None:
            return service.returncode
        time.sleep(0.1)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_inner(port, path))
    return 0


def run_outer(port: int, path: str, inner_port: int, command: list[str]) -> int:
    """Outside: start `inner` in a new namespace, wait for its socket, relay 127.0.0.1:port to it."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()
    inner = subprocess.Popen(["unshare", "-rn", sys.executable, "-m", __spec__.name, "inner",  # noqa: S603, S607
                              "--port", str(inner_port), "--socket", path, "--", *command])
    while not Path(path).exists():
        if inner.poll() is not None:
            return inner.returncode or 1
        time.sleep(0.1)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_outer(port, path))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`outer` or `inner`, with the service's command after `--`."""
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    own, command = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="python -m rewardgate_ops.private_relay")
    parser.add_argument("side", choices=("outer", "inner"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inner-port", type=int, default=0)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(own)
    if not command:
        parser.error("the service's command follows --")
    if args.side == "inner":
        return run_inner(args.port, args.socket, command)
    return run_outer(args.port, args.socket, args.inner_port or args.port, command)


if __name__ == "__main__":
    sys.exit(main())
