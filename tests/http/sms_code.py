#!/usr/bin/python3
"""Prints the code of the N-th request an HTTP recorder logged (waiting for it).

Usage: sms_code.py REQUESTS.jsonl N TIMEOUT_SECONDS
Each line is one request ({"method", "path", "body"}) in Twilio's form
format; the code is the first run of exactly 6 digits in its Body field.
Used by expect scripts, which type what this prints.
"""
import json
import re
import sys
import time
import urllib.parse

path, n, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + limit
while True:
    try:
        with open(path) as f:
            requests = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        requests = []
    if len(requests) >= n:
        form = urllib.parse.parse_qs(requests[n - 1]["body"])
        found = re.search(r"(?<!\d)\d{6}(?!\d)", form.get("Body", [""])[0])
        if found:
            sys.stdout.write(found.group(0))
            sys.exit(0)
        sys.exit(2)
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.05)
