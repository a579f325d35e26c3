"""What the test doubles in this directory (fake_panel.py, fake_part_store.py) share:
how they are run by a test. Each is a child of the test process that prints its port
(one line, stdout) once it listens and exits when its stdin reaches EOF, so a test that
dies never leaves one behind."""

import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # clients that time out, faults and steps that reset the connection are
        # expected here; a traceback for each would only bury the test's output
        pass


def watch_stdin():
    # EOF on stdin: the test process that started us is gone
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def serve(handler, state, port=0, start_after=0.0):
    """Serves handler on 127.0.0.1:port (0: any free port) with server.state = state,
    after start_after seconds (a test of a late server), until stdin reaches EOF."""
    threading.Thread(target=watch_stdin, daemon=True).start()
    if start_after > 0:
        time.sleep(start_after)
    server = QuietServer(("127.0.0.1", port), handler)
    server.state = state
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)
