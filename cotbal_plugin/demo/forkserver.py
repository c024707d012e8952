"""A fork server for ``llamafactory-cli train`` jobs: pay the ~6 s import of LLaMA-Factory once, not once per job.

The demo runs dozens of tiny jobs whose training takes a second or two while ``import llamafactory`` takes about six
seconds on a small CPU. The server imports LLaMA-Factory (with the plugin's import hook, exactly as the
``.pth`` file does in ``llamafactory-cli``) and then, for every request, forks a child that runs
``llamafactory-cli train <yaml>`` in-process: ``sys.argv``, working directory, environment and stdin/stdout/stderr
are the client's. Every child starts from the same freshly imported, never-trained state, so each job behaves like
its own ``llamafactory-cli`` process (the demo's results are identical either way; ``--launcher plain`` checks it).

The client is a drop-in launcher for ``cotbal run``: ``python -m cotbal_plugin.demo.forkserver run SOCKET``
followed by the YAML; it exits with the job's exit code. When the client dies, the server kills the job.

Start the server with :class:`ForkServer` (a context manager); it also exits when its parent process does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

PRELOAD = (
    "llamafactory.launcher",
    "llamafactory.train.tuner",
    "llamafactory.train.sft.metric",  # jieba / nltk / rouge of the predict jobs' similarity metrics
    "transformers.models.llava.modeling_llava",
    "transformers.models.clip.modeling_clip",
    "transformers.models.llama.modeling_llama",
)
_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")
MAX_MESSAGE = 1 << 24


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


# ----------------------------------------------------------------------------------------------------- server


def _run_child(request: Mapping[str, object], fds: Sequence[int]) -> int:
    """In the forked child: become the client's ``llamafactory-cli`` process and run it; returns the exit code."""
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[arg-type]
    sys.argv = [str(a) for a in request["argv"]]  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        from llamafactory.launcher import launch

        launch()
        return 0
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - report anything, like the interpreter would
        traceback.print_exc()
        return 1


def _serve_one(conn: socket.socket) -> None:
    """In a handler process: read one request, fork its job, wait for it and send back its exit code."""
    size_bytes, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    try:
        if len(size_bytes) < _HEADER.size:
            size_bytes += _recv_exact(conn, _HEADER.size - len(size_bytes))
        (size,) = _HEADER.unpack(size_bytes)
        if size > MAX_MESSAGE or len(fds) != 3:
            return
        request = json.loads(_recv_exact(conn, size).decode("utf-8"))
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                conn.close()
                code = _run_child(request, fds)
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code & 0xFF if code >= 0 else 1)
    finally:
        for fd in fds:
            os.close(fd)
    finished = False
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                finished = True
                code = os.waitstatus_to_exitcode(status)
                try:
                    conn.sendall(_STATUS.pack(code))
                except OSError:
                    pass
                return
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable and not conn.recv(1, socket.MSG_PEEK):  # the client is gone: stop its job
                return
    finally:
        if not finished:  # client gone, or this handler stopped by the server: stop the job too
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


def serve(socket_path: str | Path, preload: Sequence[str] = PRELOAD) -> None:
    """Import ``preload``, listen on ``socket_path`` and serve requests until the parent exits.

    Each request gets its own handler process (forked from this pristine server), which forks the job and waits
    for it: several clients can run jobs at the same time.
    """
    import importlib

    import cotbal_plugin

    cotbal_plugin.install()
    for name in preload:
        importlib.import_module(name)
    _warm_jieba()
    parent = os.getppid()
    path = Path(socket_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    listener.listen(4)
    os.replace(tmp, path)  # the socket appears under its name only once it accepts connections
    listener.settimeout(1.0)
    handlers: set[int] = set()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while os.getppid() == parent:
            _reap(handlers)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # a handler per request, so that several clients run their jobs at the same time
                code = 0
                try:
                    listener.close()
                    conn.settimeout(None)
                    _serve_one(conn)
                except (OSError, ValueError, ConnectionError):
                    code = 1
                finally:
                    os._exit(code)
            handlers.add(pid)
            conn.close()
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        for pid in handlers:  # stop the handlers (each stops its job when its client connection closes)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _warm_jieba() -> None:
    """Load jieba's dictionary once: every predict job's similarity metrics would otherwise load it (~1-3 s)."""
    try:
        import jieba  # type: ignore[import-not-found]
    except ImportError:
        return
    jieba.initialize()


def _reap(handlers: set[int]) -> None:
    for pid in list(handlers):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            handlers.discard(pid)


# ----------------------------------------------------------------------------------------------------- client


def request(socket_path: str | Path, argv: Sequence[str]) -> int:
    """Run ``argv`` (``["llamafactory-cli", "train", yaml]``) through the server; returns the job's exit code."""
    payload = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}).encode("utf-8")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(socket_path))
        socket.send_fds(conn, [_HEADER.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
        (code,) = _STATUS.unpack(_recv_exact(conn, _STATUS.size))
    return code


class ForkServer:
    """Start a fork server in a subprocess; ``launcher`` is the command prefix to give ``cotbal run --launcher``.

    Use as a context manager; the server is stopped (only the process this object started) on exit.
    """

    def __init__(self, log_file: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120.0) -> None:
        self.log_file = Path(log_file)
        self.env = dict(env) if env is not None else dict(os.environ)
        self.timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="cotbal-fs-")
        self.socket_path = Path(self._dir) / "s"
        self._proc: subprocess.Popen | None = None
        self._log: object | None = None

    @property
    def launcher(self) -> str:
        """The launcher command (``cotbal run --launcher``): this Python running the client."""
        import shlex

        return shlex.join([sys.executable, "-m", "cotbal_plugin.demo.forkserver", "run", str(self.socket_path)])

    def start(self) -> ForkServer:
        """Start the server and wait until it accepts jobs (raises RuntimeError when it cannot start)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("w", encoding="utf-8")
        self._log = log
        cmd = [sys.executable, "-m", "cotbal_plugin.demo.forkserver", "serve", str(self.socket_path)]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env
        )
        deadline = time.monotonic() + self.timeout
        while not self.socket_path.exists():
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise RuntimeError(f"the job server exited with code {code}; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the job server did not start within {self.timeout:.0f} s; see {self.log_file}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server process started by :meth:`start` (idempotent)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None
        self.socket_path.unlink(missing_ok=True)
        try:
            os.rmdir(self._dir)
        except OSError:
            pass

    def __enter__(self) -> ForkServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``serve SOCKET`` (the server) or ``run SOCKET <yaml> [overrides]`` (the client: a ``cotbal run`` launcher)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] not in ("serve", "run") or (args[0] == "run" and len(args) < 3):
        print("usage: python -m cotbal_plugin.demo.forkserver serve SOCKET | run SOCKET YAML [KEY=VALUE ...]",
              file=sys.stderr)  # fmt: skip
        return 2
    mode, socket_path, rest = args[0], args[1], args[2:]
    if mode == "serve":
        serve(socket_path)
        return 0
    try:
        return request(socket_path, ["llamafactory-cli", "train", *rest])
    except (OSError, ConnectionError) as err:
        print(f"cotbal demo: the job server at {socket_path} is not reachable ({err})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
