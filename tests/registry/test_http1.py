"""The direct S3 requests' HTTP/1.1 client: framing, interim answers, closes and broken answers."""

from __future__ import annotations

import pytest

from prefect_model_registry.registry.store.s3.http1 import Connection, ProtocolError


class _Socket:
    """A socket that answers from scripted chunks (as recv returns them) and records what was sent."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.sent, self.closed = list(chunks), [], False

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, _size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True


def _connection(*chunks: bytes) -> tuple[Connection, _Socket]:
    conn = Connection("127.0.0.1", 9, 1.0, None)
    sock = _Socket(list(chunks))
    conn.sock = sock  # type: ignore[assignment]
    return conn, sock


def test_a_request_goes_out_whole_in_one_send() -> None:
    conn, sock = _connection()
    conn.send("PUT", "/b/k", {"host": "h", "content-length": "4"}, b"body")
    assert sock.sent == [b"PUT /b/k HTTP/1.1\r\nhost: h\r\ncontent-length: 4\r\n\r\nbody"]


def test_a_body_split_across_reads_is_framed_by_its_length_and_the_connection_kept() -> None:
    parts = (b'HTTP/1.1 200 OK\r\nETag: "e"\r\nContent-', b"Length: 10\r\n\r\n01234", b"56789HTTP/1.1 404 ")
    conn, sock = _connection(*parts)
    assert conn.answer("GET") == (200, {"etag": '"e"', "content-length": "10"}, b"0123456789")
    assert conn.sock is sock and not sock.closed
    sock.chunks = [b"Not Found\r\nContent-Length: 0\r\n\r\n"]
    assert conn.answer("GET")[0] == 404  # the next answer starts right after the first body


def test_chunked_bodies_interim_answers_and_head_answers() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = head + b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
    conn, _ = _connection(b"HTTP/1.1 100 Continue\r\n\r\n" + chunked)
    assert conn.answer("PUT")[2] == b"Wikipedia"
    conn, _ = _connection(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    assert conn.answer("HEAD") == (200, {"content-length": "1234"}, b"")  # a HEAD answer has no body


def test_an_answer_framed_by_the_close_or_asking_for_one_closes_the_connection() -> None:
    conn, sock = _connection(b"HTTP/1.1 200 OK\r\n\r\nall of ", b"it")
    assert conn.answer("GET")[2] == b"all of it"
    assert sock.closed and conn.sock is None  # the next request reconnects
    conn, sock = _connection(b"HTTP/1.1 409 Conflict\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno")
    assert conn.answer("PUT")[:1] == (409,) and sock.closed


@pytest.mark.parametrize(
    "chunks",
    [
        [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],  # closed mid-body
        [b"HTTP/1.1 200 OK\r\nContent-"],  # closed mid-headers
        [b"SSH-2.0-OpenSSH\r\n\r\n"],  # not HTTP
        [b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ],
)
def test_a_broken_answer_is_a_connection_error(chunks: list[bytes]) -> None:
    conn, _ = _connection(*chunks)
    with pytest.raises(ProtocolError):
        conn.answer("GET")
    assert issubclass(ProtocolError, OSError)  # retried and typed like any dropped connection
