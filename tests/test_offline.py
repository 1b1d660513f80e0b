"""Nothing is downloaded at run time: detection works with every outgoing connection refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, socket
attempts = []
def refuse(self, address, *args, **kwargs):
    attempts.append(str(address))
    raise OSError("network disabled by test")
def refuse_lookup(host, *args, **kwargs):
    attempts.append(f"lookup {host}")
    raise socket.gaierror("network disabled by test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse_lookup
from redaction.detector import Detector, DetectorConfig
detector = Detector(DetectorConfig())
[spans] = detector.analyze(["Write to jane.roe@example.com or visit https://shop.example.co.uk today."])
print(json.dumps({"types": sorted({s.entity_type for s in spans}), "attempts": attempts}))
"""


def test_detector_builds_and_finds_emails_without_network(tmp_path: Path):
    # a fresh process (the e-mail recognizer's tldextract reads its settings on import) and an
    # empty cache directory, so a fetch of the public-suffix list would show up as an attempt
    env = {**os.environ, "TLDEXTRACT_CACHE": str(tmp_path / "tld-cache"), "PYTHONPATH": str(ROOT)}
    env.pop("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", None)
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "EMAIL_ADDRESS" in report["types"]
    assert report["attempts"] == []
