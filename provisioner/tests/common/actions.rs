//! Requests of the current workflow protocol as a worker sends them.

use tink_proto::current::{
    ActionMessage, ActionRequest, ActionResponse, ActionStatusRequest, StateType,
};

use super::MAC;

/// A protobuf timestamp `seconds` after the epoch.
pub fn time(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// `GetAction` for the worker `agent`, without attributes.
pub fn get_action(agent: &str) -> ActionRequest {
    ActionRequest {
        agent_id: Some(agent.into()),
        agent_attributes: None,
    }
}

/// The worker [`MAC`]'s report that `action` is in `state`: started at `start`, stopped at
/// `stop` (its duration then `stop - start` seconds), with `message`.
pub fn status(
    action: &ActionResponse,
    state: StateType,
    start: i64,
    stop: Option<i64>,
    message: &str,
) -> ActionStatusRequest {
    ActionStatusRequest {
        workflow_id: action.workflow_id.clone(),
        agent_id: Some(MAC.into()),
        task_id: action.task_id.clone(),
        action_id: action.action_id.clone(),
        action_name: action.name.clone(),
        action_state: Some(state as i32),
        execution_start: time(start),
        execution_stop: stop.and_then(time),
        execution_duration: stop.map(|stop| format!("{}s", stop - start)),
        message: Some(ActionMessage {
            message: Some(message.into()),
        }),
    }
}
