#!/usr/bin/python3
"""A scripted Tinkerbell workflow server (current protocol), in Python with grpcio: an
independent peer for tink-worker's tests, generated from proto/current.proto by protoc and
grpc_python_plugin (the Rust side is tonic/prost).

    current_server.py GENERATED_DIR SCENARIO_JSON

SCENARIO_JSON: {"get_action": [ANSWER, ...], "report": [ANSWER, ...], "listen": "HOST:PORT"},
"listen" optional (default 127.0.0.1 on a free port), each ANSWER either
{"action": {ActionResponse fields}} or {"code": "NOT_FOUND" | "FAILED_PRECONDITION" | ...}
or "ok" (reports). When a list runs out: NOT_FOUND for GetAction, "ok" for reports.

Prints `port N` once listening, then one JSON line per request it got, with the time on its
own monotonic clock (`at`, seconds): what the worker did, seen from outside it.
"""

import json
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import current_pb2  # noqa: E402
import current_pb2_grpc  # noqa: E402

SCENARIO = json.loads(sys.argv[2])
LOCK = threading.Lock()


def say(record):
    with LOCK:
        print(json.dumps(record), flush=True)


def answer(context, queue, default):
    with LOCK:
        item = queue.pop(0) if queue else default
    if isinstance(item, dict) and "code" in item:
        context.abort(getattr(grpc.StatusCode, item["code"]), item.get("message", "scripted"))
    return item


class Server(current_pb2_grpc.WorkflowServiceServicer):
    def GetAction(self, request, context):
        say({"rpc": "GetAction", "at": time.monotonic(), "agent_id": request.agent_id})
        item = answer(context, SCENARIO.setdefault("get_action", []), {"code": "NOT_FOUND"})
        action = item["action"]
        namespaces = action.pop("namespaces", None)
        response = current_pb2.ActionResponse(**action)
        if namespaces is not None:
            response.namespaces.CopyFrom(current_pb2.Namespaces(**namespaces))
        return response

    def ReportActionStatus(self, request, context):
        say({
            "rpc": "ReportActionStatus",
            "at": time.monotonic(),
            "workflow_id": request.workflow_id,
            "action_id": request.action_id,
            "state": current_pb2.StateType.Name(request.action_state),
            "execution_start": request.execution_start.seconds,
        })
        answer(context, SCENARIO.setdefault("report", []), "ok")
        return current_pb2.ActionStatusResponse()


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    current_pb2_grpc.add_WorkflowServiceServicer_to_server(Server(), server)
    port = server.add_insecure_port(SCENARIO.get("listen", "127.0.0.1:0"))
    server.start()
    print(f"port {port}", flush=True)
    # Until the test closes stdin (or kills it).
    sys.stdin.read()
    server.stop(0)


main()
