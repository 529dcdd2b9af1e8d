"""A Scribe or Flume server built with Debian's python3-thrift, for interop
tests of logagent's outputs: it runs the Python code that Debian's thrift
compiler generated from thrift/*.thrift and writes each entry it receives as
one JSON line to --out.

usage: server.py --gen DIR --service scribe|flume --port N
                 [--protocol binary|compact] --out FILE
"""
import argparse
import json
import sys
import threading

parser = argparse.ArgumentParser()
parser.add_argument("--gen", required=True)
parser.add_argument("--service", choices=["scribe", "flume"], required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--protocol", choices=["binary", "compact"], default="binary")
parser.add_argument("--out", required=True)
args = parser.parse_args()
sys.path.insert(0, args.gen)

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.server import TServer
from thrift.transport import TSocket, TTransport

out = open(args.out, "a")
lock = threading.Lock()


def emit(records):
    with lock:
        for r in records:
            out.write(json.dumps(r) + "\n")
        out.flush()


if args.service == "scribe":
    from scribe import scribe as service
    from scribe.ttypes import ResultCode

    class Handler:
        def Log(self, messages):
            emit({"category": m.category, "message": m.message} for m in messages)
            return ResultCode.OK
else:
    from flume import ThriftSourceProtocol as service
    from flume.ttypes import Status

    class Handler:
        def append(self, event):
            return self.appendBatch([event])

        def appendBatch(self, events):
            emit({"headers": e.headers, "body": e.body.decode("utf-8")} for e in events)
            return Status.OK

if args.protocol == "compact":
    pfactory = TCompactProtocol.TCompactProtocolFactory()
else:
    pfactory = TBinaryProtocol.TBinaryProtocolFactory()

server = TServer.TThreadedServer(
    service.Processor(Handler()),
    TSocket.TServerSocket(host="127.0.0.1", port=args.port),
    TTransport.TFramedTransportFactory(),
    pfactory,
    daemon=True,
)
print("serving", args.service, "on", args.port, flush=True)
server.serve()
