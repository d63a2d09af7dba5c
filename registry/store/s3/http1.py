"""A minimal HTTP/1.1 keep-alive client for the direct S3 requests (``s3_direct``).

``http.client`` parses every answer's headers with the ``email`` package and builds a request in several
buffered steps: about 0.2 ms of CPU per request, which under contention is most of a writer's CPU (eight writers
and the S3 server share two cores). An S3 answer needs far less: a status line, ``Name: value`` headers, and a
body framed by ``Content-Length`` or chunked encoding. The request goes out in one ``sendall`` (headers and body
together).
"""

from __future__ import annotations

import select
import socket
import ssl

#: Bytes read from the socket at a time.
READ_SIZE = 65536


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 this client can read, or the connection closed mid-answer."""


class Connection:
    """One keep-alive connection: send a request, read its answer; not thread-safe (one per thread)."""

    def __init__(self, host: str, port: int | None, connect_timeout: float, tls: ssl.SSLContext | None) -> None:
        self._host, self._port = host, port or (443 if tls is not None else 80)
        self._connect_timeout = connect_timeout
        self._tls = tls
        self.sock: socket.socket | None = None
        self._buffer = b""

    def connect(self, read_timeout: float) -> None:
        """Open the connection (short connect timeout), then wait up to ``read_timeout`` for each answer."""
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        sock.settimeout(read_timeout)
        self.sock, self._buffer = sock, b""

    def close(self) -> None:
        """Close the socket (the next request reconnects)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock, self._buffer = None, b""

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        """Send one request; ``headers`` must hold ``host`` and, with a body, ``content-length``."""
        assert self.sock is not None
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.sock.sendall(f"{method} {target} HTTP/1.1\r\n{lines}\r\n".encode("latin-1") + body)

    def readable(self, timeout: float) -> bool:
        """Whether the answer has started to arrive within ``timeout`` seconds."""
        assert self.sock is not None
        if self._buffer or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True
        return bool(select.select([self.sock], [], [], timeout)[0])

    def answer(self, method: str) -> tuple[int, dict[str, str], bytes]:
        """Read the answer to the request sent last: status, headers (lower-case names) and body."""
        while True:
            head = self._until(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            try:
                status = int(lines[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                raise ProtocolError(f"not an HTTP status line: {lines[0][:80]!r}") from None
            if status >= 200 or status == 101:
                break  # 1xx interim answers (100 Continue) are skipped
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in headers:
            try:
                size = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {headers['content-length'][:40]!r}") from None
            body = self._exactly(size)
        else:  # framed by the end of the connection
            body = self._buffer + self._rest()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(READ_SIZE)
        if not chunk:
            raise ProtocolError("the server closed the connection before its answer was complete")
        return chunk

    def _until(self, marker: bytes) -> bytes:
        while (at := self._buffer.find(marker)) < 0:
            self._buffer += self._recv()
        found, self._buffer = self._buffer[:at], self._buffer[at + len(marker) :]
        return found

    def _exactly(self, size: int) -> bytes:
        parts, have = [self._buffer], len(self._buffer)
        while have < size:
            chunk = self._recv()
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buffer = data[size:]
        return data[:size]

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self._until(b"\r\n").split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                while self._until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._until(b"\r\n")

    def _rest(self) -> bytes:
        assert self.sock is not None
        parts = []
        while chunk := self.sock.recv(READ_SIZE):
            parts.append(chunk)
        self._buffer = b""
        return b"".join(parts)
