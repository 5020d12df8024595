//! Tinkerbell's current protocol (v0.17+): `GetAction` hands out one action at a time,
//! `ReportActionStatus` takes an `ActionStatusRequest`.

use bootkit_hwinfo::AgentAttributes;
use tink_proto::current::workflow_service_client::WorkflowServiceClient;
use tink_proto::current::{
    ActionMessage, ActionRequest, ActionResponse, ActionStatusRequest, StateType,
};
use tonic::Code;
use tonic::transport::Channel;

use super::{Action, ActionReport, ActionState, action_timeout, attributes};

/// The namespace value that means "share the host's".
const HOST: &str = "host";

pub(super) async fn next_action(
    channel: Channel,
    worker_id: &str,
    attributes: &AgentAttributes,
) -> Result<Option<Action>, (&'static str, tonic::Status)> {
    let request = ActionRequest {
        agent_id: Some(worker_id.to_string()),
        agent_attributes: Some(attributes::to_proto(attributes)),
    };
    match WorkflowServiceClient::new(channel)
        .get_action(request)
        .await
    {
        Ok(response) => Ok(Some(action(response.into_inner()))),
        // The server's ways of saying "no workflow for you right now": none (NotFound), or
        // one that is not ready to run, e.g. just ended (FailedPrecondition, upstream's
        // tink-server). Both mean: poll again at the normal interval.
        Err(status) if matches!(status.code(), Code::NotFound | Code::FailedPrecondition) => {
            Ok(None)
        }
        Err(status) => Err(("GetAction", status)),
    }
}

fn action(response: ActionResponse) -> Action {
    let namespaces = response.namespaces.unwrap_or_default();
    let pid_host = namespaces.pid.as_deref() == Some(HOST) || response.pid.as_deref() == Some(HOST);
    let network_namespace = namespaces
        .network
        .as_deref()
        .is_some_and(|network| !network.is_empty() && network != HOST);
    Action {
        workflow_id: response.workflow_id.unwrap_or_default(),
        task_id: response.task_id.unwrap_or_default(),
        action_id: response.action_id.unwrap_or_default(),
        // The current protocol does not name tasks; the task id stands in for logs.
        task_name: String::new(),
        name: response.name.unwrap_or_default(),
        image: response.image.unwrap_or_default(),
        timeout: action_timeout(response.timeout.unwrap_or_default()),
        command: response.command,
        volumes: response.volumes,
        environment: response.environment,
        pid_host,
        network_namespace,
        on_timeout: Vec::new(),
        on_failure: Vec::new(),
    }
}

pub(super) async fn report(
    channel: Channel,
    worker_id: &str,
    report: &ActionReport,
) -> Result<(), tonic::Status> {
    let request = ActionStatusRequest {
        workflow_id: Some(report.workflow_id.clone()),
        agent_id: Some(worker_id.to_string()),
        task_id: Some(report.task_id.clone()),
        action_id: Some(report.action_id.clone()),
        action_name: Some(report.action_name.clone()),
        action_state: Some(state(report.state) as i32),
        execution_start: Some(report.started.into()),
        execution_stop: report.stopped.map(Into::into),
        execution_duration: report.stopped.map(|_| go_duration(report.duration())),
        message: (!report.message.is_empty()).then(|| ActionMessage {
            message: Some(report.message.clone()),
        }),
    };
    WorkflowServiceClient::new(channel)
        .report_action_status(request)
        .await
        .map(drop)
}

fn state(state: ActionState) -> StateType {
    match state {
        ActionState::Running => StateType::Running,
        ActionState::Success => StateType::Success,
        ActionState::Failed => StateType::Failed,
        ActionState::Timeout => StateType::Timeout,
    }
}

/// A duration as Go's `time.ParseDuration` reads it (the server is Go): seconds with
/// millisecond precision, `"12.345s"`.
fn go_duration(duration: std::time::Duration) -> String {
    format!("{}.{:03}s", duration.as_secs(), duration.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tink_proto::current::Namespaces;

    #[test]
    fn host_namespaces_and_timeouts_from_the_response() {
        let response = ActionResponse {
            name: Some("disk".into()),
            timeout: Some(0),
            pid: Some("host".into()),
            namespaces: Some(Namespaces {
                network: Some("host".into()),
                pid: None,
            }),
            ..Default::default()
        };
        let action = action(response);
        assert!(action.pid_host);
        assert!(
            !action.network_namespace,
            "network: host keeps the host network"
        );
        assert_eq!(action.timeout, super::super::DEFAULT_ACTION_TIMEOUT);

        let own_network = ActionResponse {
            namespaces: Some(Namespaces {
                network: Some("bridge".into()),
                pid: Some(String::new()),
            }),
            ..Default::default()
        };
        let action = super::action(own_network);
        assert!(action.network_namespace && !action.pid_host);
    }

    #[test]
    fn durations_in_go_syntax() {
        assert_eq!(
            go_duration(std::time::Duration::from_millis(61_005)),
            "61.005s"
        );
    }
}
