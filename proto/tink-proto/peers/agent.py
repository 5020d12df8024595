#!/usr/bin/python3
"""A Tinkerbell agent in Python with grpcio, as an independent peer of the provisioner's
workflow service, generated from proto/ by protoc and grpc_python_plugin.

    agent.py GENERATED_DIR current AUTHORITY AGENT_ID
        GetAction, then RUNNING with Go's zero time as its start (tink-agent does this when it
        has not stamped one: seconds = -62135596800), then SUCCESS; prints one JSON line with
        the action as served.
    agent.py GENERATED_DIR legacy AUTHORITY WORKER_ID
        GetWorkflowContexts, then GetWorkflowActions of the first context; prints one JSON
        line with the contexts' current_worker and every action's worker_id, as tink v0.12's
        worker reads them (it runs only actions whose worker_id is its own id).
"""

import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402

GO_ZERO_TIME = -62135596800


def current(channel, agent_id):
    import current_pb2
    import current_pb2_grpc

    stub = current_pb2_grpc.WorkflowServiceStub(channel)
    action = stub.GetAction(current_pb2.ActionRequest(agent_id=agent_id), timeout=10)
    served = {
        "workflow_id": action.workflow_id,
        "name": action.name,
        "pid": action.pid if action.HasField("pid") else None,
        "namespaces": (
            {
                "network": action.namespaces.network if action.namespaces.HasField("network") else None,
                "pid": action.namespaces.pid if action.namespaces.HasField("pid") else None,
            }
            if action.HasField("namespaces")
            else None
        ),
    }
    for state in ("STATE_TYPE_RUNNING", "STATE_TYPE_SUCCESS"):
        report = current_pb2.ActionStatusRequest(
            workflow_id=action.workflow_id,
            agent_id=agent_id,
            task_id=action.task_id,
            action_id=action.action_id,
            action_name=action.name,
            action_state=current_pb2.StateType.Value(state),
        )
        report.execution_start.seconds = GO_ZERO_TIME
        stub.ReportActionStatus(report, timeout=10)
    print(json.dumps(served), flush=True)


def legacy(channel, worker_id):
    import legacy_pb2
    import legacy_pb2_grpc

    stub = legacy_pb2_grpc.WorkflowServiceStub(channel)
    contexts = list(
        stub.GetWorkflowContexts(legacy_pb2.WorkflowContextRequest(worker_id=worker_id), timeout=10)
    )
    actions = stub.GetWorkflowActions(
        legacy_pb2.WorkflowActionsRequest(workflow_id=contexts[0].workflow_id), timeout=10
    ).action_list
    print(
        json.dumps(
            {
                "current_workers": [context.current_worker for context in contexts],
                "worker_ids": [action.worker_id for action in actions],
            }
        ),
        flush=True,
    )


def main():
    protocol, authority, agent_id = sys.argv[2:5]
    with grpc.insecure_channel(authority) as channel:
        {"current": current, "legacy": legacy}[protocol](channel, agent_id)


main()
