"""A stand-in LLM for the container test, standard library only (runs with the host's python3).

Answers POST /v1/chat/completions by echoing the last user message, and appends every body it
receives to a file, so the test can check that only placeholders ever reached it.

Usage: python3 docker/fake_llm.py PORT RECEIVED_FILE
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as received:
            received.write(body + b"\n")
        messages = json.loads(body).get("messages", [])
        text = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        answer = json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), FakeLLM).serve_forever()
