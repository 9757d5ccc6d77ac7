"""A TCP endpoint on loopback that fails connections on purpose: a source that is down, or one
that fails once and then works."""

from __future__ import annotations

import socket
import threading
from typing import Optional


class FlakyProxy:
    """Accepts TCP connections and counts them (`accepted`). The first `drop` are closed at once;
    every later one is forwarded to `target`. Without a target every connection is closed (a
    server that is down but reachable)."""

    def __init__(self, target: Optional[tuple[str, int]] = None, drop: int = 0) -> None:
        self.target, self.drop, self.accepted = target, drop, 0
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def arm(self, drop: int = 1) -> None:
        """Drop the next `drop` connections."""
        self.drop = self.accepted + drop

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            if self.target is None or self.accepted <= self.drop:
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(1 << 16):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()
