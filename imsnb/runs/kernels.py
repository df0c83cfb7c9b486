"""Kernels for runs: over IPC, forked from a warm parent that has already imported what every notebook imports.

A plain Jupyter kernel is a new interpreter that spends about a second of CPU importing ipykernel, pandas,
matplotlib, boto3, psycopg and imsnb before the first cell runs, and every notebook of a suite pays it again.
`ForkServer` starts one process (`python -m imsnb.runs.kernels FD`) that imports them once and then, per run, forks a
fresh kernel: a new process with its own pid, process group, environment (the run's, sent whole), working directory
and namespace. Nothing is shared between two runs' kernels but the read-only pages of the imports.

Fork safety, checked rather than hoped for:
- the server starts isolated from the caller's folder (`python -P`, cwd "/"): what it imports, every kernel has,
  so a `pandas.py` in the folder a suite was started from must never be among it;
- the server never starts a thread, opens a socket to a target, creates a zmq context, a boto3 session or a
  matplotlib figure; it refuses to fork (and the runner starts a plain kernel instead) if a thread exists;
- imsnb's own modules, which read the run key when first imported (`imsnb.started_with`), are dropped in the child
  and imported afresh by the kernel under the run's environment; the server itself never holds a key;
- the child re-seeds numpy's global RNG, restores default signal handlers and re-applies MPLBACKEND from the run's
  environment, as a fresh interpreter would;
- each kernel is in its own process group (set by both sides of the fork, so `killpg` can never reach the
  server or the caller), and exits when the server does (ipykernel's parent poller, JPY_PARENT_PID).

A suite (and triage's follow-ups, which run as one) shares one server between all of its runs. A single run
starts a plain kernel: a server of its own cost it more than it saved (bench/run_overhead.py).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# What every kernel imports before the first cell; the notebooks' own imports are added (`notebook_imports`).
KERNEL_MODULES = ("ipykernel.kernelapp", "ipykernel.ipkernel")
# What a module imports only when first used: warm it too when the module is warmed.
LAZY_DEPENDENCIES = {
    "imsnb.aws": ("boto3", "botocore.config", "botocore.exceptions"),
    "imsnb.report": ("IPython.display",),
    "imsnb.charts": ("numpy",),
}
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_MODULE = "ipykernel_launcher"


# In a forked kernel: the pid of the server it was forked from (None in any other process).
FORKED_FROM: int | None = None


class ForkServerError(RuntimeError):
    """The warm parent could not give a kernel (the runner then starts a plain one)."""


class ForkServer:
    """A warm parent process that forks kernels on request. Thread-safe; close() (or the caller's exit) ends it."""

    def __init__(self, modules: Iterable[str] = ()) -> None:
        """Start the server; it imports ipykernel and `modules` (see `notebook_imports`) before its first fork."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self._lock = threading.Lock()
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMSNB_ALLOW")}  # never the server's key
        env.setdefault("MPLBACKEND", INLINE_BACKEND)  # as ipykernel sets it, before matplotlib is imported
        if env.get("PYTHONPATH"):
            env["PYTHONPATH"] = isolated_pythonpath(env["PYTHONPATH"])
        # Isolated from the caller's folder: `-P` puts no working directory on sys.path (`python -m` would put the
        # cwd first) and the server runs in "/", so a pandas.py where `imsnb suite` was started is never imported
        # into every kernel. PYTHONPATH, an explicit choice, is kept (made absolute).
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "imsnb.runs.kernels", str(theirs.fileno()), *warm_set(modules)],
            pass_fds=[theirs.fileno()],
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C goes to the caller, which stops the runs itself
        )
        theirs.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, int]:
        """Fork a kernel running `argv` (a `python -m ipykernel_launcher ...` command) with exactly `env` in
        `cwd`; returns its pid and a pidfd for it (the caller owns the fd)."""
        if KERNEL_MODULE not in argv:
            raise ForkServerError(f"not an ipykernel command: {argv[:3]}")
        args = argv[argv.index(KERNEL_MODULE) + 1 :]
        request = json.dumps({"args": args, "env": env, "cwd": cwd}).encode() + b"\n"
        with self._lock:
            if self.process.poll() is not None:
                raise ForkServerError(f"the fork server exited ({self.process.returncode})")
            try:
                self._sock.sendall(request)
                message, fds, _flags, _addr = socket.recv_fds(self._sock, 4096, 1)
            except OSError as exc:
                raise ForkServerError(f"the fork server did not answer: {exc}") from None
        if not message:
            raise ForkServerError("the fork server closed its socket")
        reply = json.loads(message.decode())
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            raise ForkServerError(reply["error"])
        if len(fds) != 1:
            raise ForkServerError("the fork server sent no pidfd")
        return int(reply["pid"]), fds[0]

    def close(self) -> None:
        """End the server (its kernels notice and exit: their parent poller watches it)."""
        try:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # the server reads end-of-file and exits
            self._sock.close()
        finally:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ForkedKernel:
    """The handle jupyter_client's LocalProvisioner drives (the subset of Popen it uses), for a forked kernel.

    The kernel is the server's child, not ours: liveness and signals go through a pidfd, which can never name a
    recycled pid. Its exit code is not ours to read; a dead kernel polls as -1."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._pidfd >= 0:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
            if readable:
                self.returncode = -1
                os.close(self._pidfd)
                self._pidfd = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._pidfd >= 0:
            readable, _, _ = select.select([self._pidfd], [], [], timeout)
            if not readable:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
        return self.poll() if self.returncode is None else self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self._pidfd, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def isolated_pythonpath(value: str) -> str:
    """PYTHONPATH for a process started elsewhere: relative entries made absolute from here, empty ones (which
    mean "the working directory") dropped."""
    return os.pathsep.join(os.path.abspath(entry) for entry in value.split(os.pathsep) if entry)


def notebook_imports(paths: Iterable[Path]) -> list[str]:
    """The modules the code cells of these notebooks import (`from imsnb import postgres` → `imsnb.postgres`);
    cells that do not parse are skipped (the kernel will say why)."""
    found: dict[str, None] = {}
    for path in paths:
        try:
            cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError, AttributeError):
            continue
        for cell in cells if isinstance(cells, list) else []:
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            try:
                tree = ast.parse("".join(source) if isinstance(source, list) else str(source))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(dict.fromkeys(alias.name for alias in node.names))
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found[node.module] = None
                    found.update(dict.fromkeys(f"{node.module}.{alias.name}" for alias in node.names))
    return list(found)


def warm_set(modules: Iterable[str]) -> list[str]:
    """What the server imports: the kernel's own modules, `modules` and what they import lazily."""
    chosen = dict.fromkeys(KERNEL_MODULES)
    for name in modules:
        chosen[name] = None
        for prefix, extra in LAZY_DEPENDENCIES.items():
            if name == prefix or name.startswith(prefix + "."):
                chosen.update(dict.fromkeys(extra))
    return list(chosen)


def provisioner_class(server: ForkServer) -> type:
    """A LocalProvisioner that asks `server` for the kernel instead of starting an interpreter (and starts a plain
    one, with a warning in the log, when the server cannot give one)."""
    # lazy: the kernel machinery (~1 s) only in the process that executes a notebook
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):
        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            env = dict(kwargs.get("env") or os.environ)
            env["JPY_PARENT_PID"] = str(server.pid)  # the kernel exits when the server does
            cwd = str(kwargs.get("cwd") or os.getcwd())
            try:
                pid, pidfd = server.spawn(cmd, env, cwd)
            except ForkServerError as exc:
                logging.getLogger(__name__).warning("no warm kernel (%s): starting a plain one", exc)
                return await super().launch_kernel(cmd, **kwargs)
            self.process = ForkedKernel(pid, pidfd)
            self.pid = self.pgid = pid  # its own process group, set on both sides of the fork
            self.cwd = cwd
            return self.connection_info

    return ForkProvisioner


# --- the server process -------------------------------------------------------------------------------------


def _serve(fd: int, modules: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides when runs stop
    signal.signal(signal.SIGCHLD, _reap)  # no zombies; their CPU time counts as the server's children's
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - `from x import name` of a non-module; or it fails in the kernel too
            pass
    sock = socket.socket(fileno=fd)
    reader = sock.makefile("rb")
    for line in reader:
        try:
            request = json.loads(line)
        except ValueError:
            break
        if threading.active_count() != 1:
            sock.sendall(json.dumps({"error": f"{threading.active_count()} threads in the server"}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            reader.close()
            sock.close()
            _become_kernel(request)  # never returns
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            sock.sendall(json.dumps({"error": f"kernel {pid} exited at once: {exc}"}).encode())
            continue
        socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
        os.close(pidfd)


def _reap(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_kernel(request: dict[str, Any]) -> None:
    global FORKED_FROM
    code = 1
    try:
        FORKED_FROM = os.getppid()
        os.setpgid(0, 0)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        # imsnb reads what the run was started with (the run key, the journal, the cell timeout) when it is first
        # imported (imsnb.started_with): none of imsnb's own modules cross the fork, so the kernel imports them afresh
        # under this run's environment. Only the third-party modules they pulled in stay warm.
        for name in [m for m in sys.modules if m.split(".")[0] == "imsnb" and m != __name__]:
            del sys.modules[name]
        if "matplotlib" in sys.modules:  # read MPLBACKEND at import, in the server: read it again for this run
            # lazy: preloaded in the kernel only (the runner's parent process never draws)
            import matplotlib

            matplotlib.rcParams["backend"] = os.environ.get("MPLBACKEND") or INLINE_BACKEND
        if "numpy" in sys.modules:
            # lazy: preloaded in the kernel only (the runner's parent process never draws)
            import numpy

            numpy.random.seed()  # not the server's state, shared by every fork
        # IPKernelApp read JPY_PARENT_PID when the server imported it: give this run's value explicitly
        args = [*request["args"], f"--IPKernelApp.parent_handle={int(os.environ.get('JPY_PARENT_PID') or 0)}"]
        sys.argv = [KERNEL_MODULE, *args]
        # lazy: the kernel machinery (~1 s) only in the process that becomes a kernel
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:  # noqa: BLE001 - say why on stderr, then exit without running the server's code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    from imsnb.runs import kernels  # run as imsnb.runs.kernels, not __main__, so a kernel can see FORKED_FROM

    kernels._serve(int(sys.argv[1]), sys.argv[2:])
