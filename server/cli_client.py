"""The client commands of `tensorrank`: query, feed, health and demo."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from proto.tensorrank.v1 import ranking_pb2 as pb
from server.client import DEFAULT_TARGET, Client, ClientError, FeedInterrupted, FeedSummary
from server.feed_file import FeedOp, read_operations
from server.progress import Progress
from server.query_args import Query, format_json, parse_query_args, response_json

TARGET_ENV = "TENSORRANK_TARGET"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LISTENING = re.compile(r"listening on (\S+:\d+)")


def _target_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=os.environ.get(TARGET_ENV, DEFAULT_TARGET),
                   help=f"the server's HOST:PORT (default: ${TARGET_ENV} or {DEFAULT_TARGET})")


def _fail(e: ClientError) -> int:
    print(f"tensorrank: {e}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------- query


def parse_nearest_neighbor_args(items: Sequence[str]) -> dict[str, str]:
    """`FIELD=QUERY` items -> {FIELD: QUERY}, for RankRequest.nearest_neighbor."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not key or not name:
            raise ClientError(f"--nearest-neighbor '{item:.60}': expected FIELD=QUERY, e.g. 'embedding=q'")
        if key in out:
            raise ClientError(f"--nearest-neighbor names {key} twice")
        out[key] = name
    return out


def cmd_query(args: argparse.Namespace) -> int:
    try:
        query = Query(args.profile, parse_query_args(args.query), args.schema, args.hits, args.offset,
                      parse_nearest_neighbor_args(args.nearest_neighbor))
        with Client(args.target, timeout=args.timeout) as client:
            request = query.request(client.application())
            resp, ms = client.rank(request)
    except ClientError as e:
        return _fail(e)
    print(format_json(response_json(resp, ms)))
    return 0


# ---------------------------------------------------------------------- feed


def _error_line(op: FeedOp, error: str) -> str:
    if op.doc_id and op.doc_id not in error:
        return f"error: {op.request_id} ({op.doc_id}): {error}"
    return f"error: {op.request_id}: {error}"


def run_feed(client: Client, ops: Iterator[FeedOp], progress: Progress, show_errors: int,
             window: int) -> tuple[FeedSummary, str | None]:
    """Feed with progress and error lines on stderr; the summary and, if the stream broke, why."""
    shown = 0

    def on_result(op: FeedOp, res: pb.FeedResult) -> None:
        nonlocal shown
        progress.update(res.ok)
        if not res.ok:
            shown += 1
            if shown <= show_errors:
                progress.message(_error_line(op, res.error))
            elif shown == show_errors + 1:
                progress.message("(further errors are counted but not shown; --show-errors N shows more)")

    try:
        summary = client.feed(ops, window=window, on_result=on_result)
        broke = None
    except FeedInterrupted as e:
        summary, broke = e.summary, str(e)
    progress.finish()
    return summary, broke


def cmd_feed(args: argparse.Namespace) -> int:
    stream: BinaryIO
    if args.file == "-":
        stream, name, size = sys.stdin.buffer, "stdin", None
    else:
        try:
            stream = open(args.file, "rb")  # closed below
            size = os.fstat(stream.fileno()).st_size
        except OSError as e:
            print(f"tensorrank: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
            return 1
        name = os.path.basename(args.file)
    try:
        with Client(args.target, timeout=None) as client:
            client.application()  # fails fast, with the usual message, when no server is there
            fraction = (lambda: stream.tell() / size) if size else None
            progress = Progress(sys.stderr, fraction=fraction, every=args.progress_every)
            summary, broke = run_feed(client, read_operations(stream, name), progress, args.show_errors,
                                      args.window)
    except ClientError as e:
        return _fail(e)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    print(summary.line())
    if broke is not None:
        print(f"tensorrank: {broke}; operations not answered may or may not have been stored", file=sys.stderr)
        return 1
    if summary.failed:
        print(f"tensorrank: {summary.failed:,} operations failed", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------- health


def cmd_health(args: argparse.Namespace) -> int:
    try:
        with Client(args.target, timeout=args.timeout) as client:
            if args.wait:
                client.wait_serving(args.wait, args.service)
                status = "SERVING"
            else:
                status = client.health(args.service)
    except ClientError as e:
        return _fail(e)
    print(status)
    return 0 if status == "SERVING" else 1


# ---------------------------------------------------------------------- demo


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tensorrank_example_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ClientError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Server:
    """`tensorrank serve` as a child process, its output in a log file."""

    def __init__(self, app: Path, data: Path, log_path: Path, device: str) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")  # closed in stop
        cmd = [sys.executable, "-m", "server.cli", "--log-level", "INFO", "serve", str(app), "--data", str(data),
               "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--device", device]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=str(Path(__file__).resolve().parents[1]))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(f"  | {line}" for line in text[-lines:])

    def address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log_path.read_text(encoding="utf-8", errors="replace"))
            if m:
                return m.group(1)
            if not self.alive():
                raise ClientError(f"the server exited (status {self.proc.returncode}) before listening:\n{self.tail()}")
            time.sleep(0.05)
        raise ClientError(f"the server did not say where it listens within {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


DEMO_TOPICS = ("science", "sports", "finance")


def _title(client: Client, doc_id: str) -> str:
    fields = client.get(doc_id).fields
    t = fields.get("title")
    if t is None:
        return ""
    return t.values.decode("utf-8", errors="replace") if t.type == "string" else ""


def _demo_queries(client: Client, corpus: ModuleType, info: pb.ApplicationInfo, out: Any) -> None:
    for topic in DEMO_TOPICS:
        request = Query("mlp", {"q": corpus.topic_query(topic)}, "news", hits=5).request(info)
        runs = [client.rank(request) for _ in range(5)]  # the first may pay for compiling kernels
        resp, _ = runs[-1]
        trip = statistics.median(ms for _, ms in runs)
        scoring = statistics.median(r.scoring_ms for r, _ in runs)
        print(f"\nquery: the '{topic}' topic's centre as query(q), rank profile mlp: {resp.coverage.scored:,} of "
              f"{resp.coverage.documents:,} documents scored, median of {len(runs)} runs "
              f"{trip:.1f} ms round trip ({scoring:.1f} ms scoring)", file=out)
        for i, h in enumerate(resp.hits, 1):
            mf = response_json(resp, 0)["hits"][i - 1]["match_features"]
            model = mf.get("onnx(news_mlp).score")
            while isinstance(model, list):
                model = model[0]
            extra = f"model {model:.3f}, popularity {mf.get('attribute(popularity)', 0):.3f}" if model is not None \
                else ""
            print(f"  {i}. {h.relevance:.4f}  {h.id:<22} {_title(client, h.id):<40} {extra}", file=out)


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    app = Path(args.app) if args.app else EXAMPLES / "news"
    maker = (Path(args.app).parent if args.app else EXAMPLES) / "make_corpus.py"
    if not (app / "schemas" / "news.sd").is_file() or not maker.is_file():
        print(f"tensorrank: the bundled example is not at {app} (with {maker}): the demo runs from a source "
              "checkout (make demo)", file=sys.stderr)
        return 1
    corpus = _load_module(maker)
    tmp = Path(tempfile.mkdtemp(prefix="tensorrank-demo-"))
    out = sys.stdout
    server: _Server | None = None
    try:
        print(f"tensorrank demo: serving {app} with its data in {tmp}", file=out, flush=True)
        server = _Server(app, tmp / "data", tmp / "server.log", args.device)
        target = server.address(timeout=120)
        with Client(target, timeout=120) as client:
            client.wait_serving(120, alive=server.alive)
            info = client.application()
            print(f"server at {target} is SERVING on the {info.device} ({info.device_reason}) after "
                  f"{time.perf_counter() - started:.1f} s", file=out)
            print(f"feeding {args.docs:,} generated news articles (examples/make_corpus.py)", file=out, flush=True)
            ops = (FeedOp(f"demo:{i}", line, corpus.doc_id(i)) for i, line in
                   enumerate(corpus.iter_lines(args.docs)))
            summary, broke = run_feed(client, ops, Progress(sys.stderr, total=args.docs), 10, 4096)
            print(summary.line(), file=out)
            if broke is not None or summary.failed:
                raise ClientError(broke or f"{summary.failed:,} operations failed")
            _demo_queries(client, corpus, client.application(), out)
        code = server.stop()
        server = None
        print(f"\nserver stopped (SIGTERM, exit status {code}); the demo took {time.perf_counter() - started:.1f} s",
              file=out)
        print("to keep the example serving: tensorrank serve examples/news --data ./data   (see README.md)", file=out)
        return 0 if code == 0 else 1
    except ClientError as e:
        if server is not None:
            print(f"server log ({server.log_path}):\n{server.tail()}", file=sys.stderr)
        return _fail(e)
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {tmp}", file=out)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------- registration


def register_client_commands(sub: Any) -> None:
    s = sub.add_parser("query", help="rank documents on a running server and print the hits as JSON")
    s.add_argument("--profile", required=True, help="rank profile")
    s.add_argument("--query", action="append", default=[], metavar="NAME=VALUE",
                   help="a query input: q=[0.1, 0.2, ...] (JSON, any of Vespa's tensor JSON forms) or q=@file.json; "
                        "repeat for several inputs. The type comes from the profile's inputs on the server")
    s.add_argument("--nearest-neighbor", action="append", default=[], metavar="FIELD=QUERY",
                   help="the query input that a distance/closeness feature of FIELD (or of a label) reads, as "
                        "YQL's nearestNeighbor(FIELD, QUERY) says; repeat for several fields")
    s.add_argument("--hits", type=int, default=10)
    s.add_argument("--offset", type=int, default=0)
    s.add_argument("--schema", help="the schema (needed only when several have the profile)")
    s.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    _target_arg(s)
    s.set_defaults(func=cmd_query)

    s = sub.add_parser("feed", help="feed Vespa feed JSON (JSONL or a JSON array) to a running server")
    s.add_argument("file", help="the feed file, or - for standard input")
    s.add_argument("--window", type=int, default=4096, help="operations in flight at most (default 4096)")
    s.add_argument("--progress-every", type=int, default=10_000,
                   help="when stderr is not a terminal, a progress line every N operations")
    s.add_argument("--show-errors", type=int, default=20, help="print at most N errors (all are counted)")
    _target_arg(s)
    s.set_defaults(func=cmd_feed)

    s = sub.add_parser("health", help="the server's gRPC health status; exit status 0 when SERVING")
    s.add_argument("--service", default="", help="service name ('' for the whole server)")
    s.add_argument("--wait", type=float, default=0, help="wait up to this many seconds for SERVING")
    s.add_argument("--timeout", type=float, default=5.0, help="deadline of each check in seconds")
    _target_arg(s)
    s.set_defaults(func=cmd_health)

    s = sub.add_parser("demo", help="serve the bundled news example, feed it 100,000 documents and query it")
    s.add_argument("--docs", type=int, default=100_000)
    s.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    s.add_argument("--app", help="application package (default: examples/news of this checkout)")
    s.add_argument("--keep", action="store_true", help="keep the temporary data directory and server log")
    s.set_defaults(func=cmd_demo)
