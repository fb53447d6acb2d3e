"""A TCP proxy that a test can cut and restore, to take MariaDB or Redis "down" for one process only.

The shared MariaDB and Redis stay up for everyone else; the process under test is pointed at the
proxy's port instead (DATABASE_URL, REDIS_URL), and ``cut()`` makes its service vanish: every open
connection is closed and new ones are refused, as when a server dies. ``restore()`` brings it back.

Threads: the caller's thread owns the proxy (start, cut, restore, stop). One accept thread per
listening period accepts clients; each client gets two pump threads, one per direction. The set of
open connections is shared between them and guarded by ``_lock``; nothing else is shared.
"""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    # --- the caller's thread ---------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def cut(self) -> None:
        """The service is gone: refuse new connections and close every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _close(sock)

    def restore(self) -> None:
        if self._listener is None:
            self._listen()

    def stop(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))  # the same port again after a cut
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    # --- the accept thread -----------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    # --- the pump threads ------------------------------------------------------------------

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open -= {source, sink}
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    # shutdown() first: it wakes a pump thread blocked in recv() on this socket (close() alone
    # would not) and tells the peer at once that the connection is gone.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
