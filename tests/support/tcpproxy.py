"""A TCP forwarder between a client and the API server, that a test can hold or cut: what
a slow watch, a network failure or an API server restart look like to the client, without
stopping the API server the rest of the session shares.

``hold()`` stops passing the server's bytes to the client (they are delivered on
``release()``): a connected watch whose events are late. ``cut()`` closes every connection
and refuses new ones until ``restore()``: the API server gone, then back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopped = False
        self._accepting = threading.Thread(target=self._accept, args=(self._listener,))
        self._accepting.daemon = True
        self._accepting.start()

    # --- what a test does ----------------------------------------------------------------

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def cut(self) -> None:
        """Close every connection and stop listening (connections are refused)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """Listen again on the same port."""
        listener = socket.create_server(("127.0.0.1", self.port))
        with self._lock:
            self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()

    def close(self) -> None:
        self._stopped = True
        self.release()
        self.cut()

    # --- forwarding -----------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, target, held in ((client, server, False), (server, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, target, held), daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, held: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if held:
                    self._released.wait()
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def tcp_proxy(upstream: tuple[str, int]) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
