#!/usr/bin/python3
"""Prints the code of the N-th code mail a recorder wrote (waiting for it).

Usage: last_code.py RECORDED.jsonl N TIMEOUT_SECONDS
A code mail is one whose Subject is "Your verification code"; the code is
the first run of exactly 6 digits in its body. Used by expect scripts,
which type what this prints.
"""
import json
import re
import sys
import time

path, n, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + limit
while True:
    try:
        with open(path) as f:
            mails = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        mails = []
    codes = []
    for m in mails:
        head, _, body = m["data"].partition("\r\n\r\n")
        if re.search(r"^Subject: Your verification code\r?$", head, re.M):
            body = body.replace("=\r\n", "")
            found = re.search(r"(?<!\d)\d{6}(?!\d)", body)
            if found:
                codes.append(found.group(0))
    if len(codes) >= n:
        sys.stdout.write(codes[n - 1])
        sys.exit(0)
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.05)
