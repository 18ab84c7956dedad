"""A stand-in OpenAI-compatible server for what a real one cannot be made to do on demand: answer 503 a
given number of times before succeeding (retries), or be killed while serving (SIGTERM handling).
The real lifecycle runs against `transformers serve` in tests/test_serve.py.

    python tests/stub_server.py PORT [FAILS]
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    fails = 0
    hits = 0
    lock = threading.Lock()

    def log_message(self, *a):  # quiet
        pass

    def _send(self, code: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"status": "ok"} if self.path == "/health" else {"hits": Handler.hits})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Handler.lock:
            Handler.hits += 1
            fail = Handler.hits <= Handler.fails
        if fail:
            return self._send(503, {"error": "overloaded"})
        if body.get("model") == "bad":
            return self._send(400, {"error": "unknown model"})
        text = "echo: " + body["messages"][-1]["content"]
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}],
                         "usage": {"completion_tokens": len(text.split())}})


def serve(port: int, fails: int = 0) -> ThreadingHTTPServer:
    Handler.fails, Handler.hits = fails, 0
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    print("stub server starting", flush=True)
    serve(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0).serve_forever()
