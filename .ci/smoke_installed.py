"""CI's smoke run of smg as a user installs it: run with the Python of a virtual
environment that has the wheel (not an editable install) and the ``openai`` client, from
a directory outside the source tree.

It checks that ``smg`` imports from site-packages, that ``smg --help`` and ``smg
version`` work (all six kernels compiled), then starts a bare ``smg serve`` (two
reference workers), answers one chat and one streamed chat through the official
``openai`` client, and stops it with SIGTERM. Exit status 0 when all of that held.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading

SOURCE = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ("radix", "detok", "stops", "bpe", "grpcwire", "h2wire")


def check(cond: bool, what: str) -> None:
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def smg_command() -> str:
    return str(pathlib.Path(sys.executable).with_name("smg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    import smg

    where = pathlib.Path(smg.__file__).resolve().parent
    check(where != SOURCE / "smg" and "site-packages" in where.parts,
          f"smg imports from the installed package ({where})")
    check(pathlib.Path.cwd().resolve() != SOURCE and SOURCE not in pathlib.Path.cwd().resolve().parents,
          f"running outside the source tree ({pathlib.Path.cwd()})")
    smg_bin = smg_command()

    out = subprocess.run([smg_bin, "--help"], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0 and "serve" in out.stdout, "smg --help")
    out = subprocess.run([smg_bin, "serve", "--help"], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0 and "Routing:" in out.stdout, "smg serve --help")
    out = subprocess.run([smg_bin, "version"], capture_output=True, text=True, timeout=60)
    print(out.stdout, end="")
    check(out.returncode == 0, "smg version")
    for kernel in KERNELS:
        check(re.search(rf"^\s+{kernel}\s+cython$", out.stdout, re.M) is not None, f"kernel {kernel} is compiled")

    port = free_port()
    proc = subprocess.Popen([smg_bin, "serve", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ready, banner = threading.Event(), []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print("  | " + line.rstrip(), flush=True)
            if " ready on http://" in line:
                banner.append(line)
                ready.set()
        ready.set()  # exited

    threading.Thread(target=read, daemon=True).start()
    try:
        check(ready.wait(120) and bool(banner), "bare smg serve printed its banner")
        from openai import OpenAI

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=30, max_retries=0)
        chat = client.chat.completions.create(model="smg-reference", messages=[{"role": "user", "content": "Hello!"}])
        text = chat.choices[0].message.content or ""
        check(bool(text) and chat.choices[0].finish_reason in ("stop", "length"), f"chat: {text[:40]!r}")
        stream = client.chat.completions.create(model="smg-reference", stream=True,
                                                messages=[{"role": "user", "content": "Hello again!"}])
        pieces, finish = [], None
        for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        check(bool("".join(pieces)) and finish in ("stop", "length"),
              f"streamed chat: {len(pieces)} chunks, finish {finish}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
    check(code == 0, f"smg serve stopped on SIGTERM (exit {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
