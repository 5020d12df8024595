//! tink v0.9–v0.12's protocol (EMT's worker speaks it): the worker lists its workflows'
//! contexts, fetches the action list of one, and works out which action is next from the
//! context's current index and state.

use std::time::SystemTime;

use tink_proto::legacy::workflow_service_client::WorkflowServiceClient;
use tink_proto::legacy::{
    State, WorkflowAction, WorkflowActionStatus, WorkflowActionsRequest, WorkflowContext,
    WorkflowContextRequest,
};
use tonic::transport::Channel;

use super::{Action, ActionReport, ActionState, action_timeout};

/// A worker has few workflows; more contexts than this in one answer is a broken server.
const MAX_CONTEXTS: usize = 1000;

/// The namespace value that means "share the host's".
const HOST: &str = "host";

pub(super) async fn next_action(
    channel: Channel,
    worker_id: &str,
) -> Result<Option<Action>, (&'static str, tonic::Status)> {
    let mut client = WorkflowServiceClient::new(channel);
    for context in contexts(&mut client, worker_id).await? {
        let Some(index) = next_index(&context) else {
            continue;
        };
        let request = WorkflowActionsRequest {
            workflow_id: context.workflow_id.clone(),
        };
        let actions = client
            .get_workflow_actions(request)
            .await
            .map_err(|status| ("GetWorkflowActions", status))?
            .into_inner()
            .action_list;
        let Some(action) = actions.into_iter().nth(index) else {
            continue;
        };
        if action.worker_id.is_empty() || action.worker_id == worker_id {
            return Ok(Some(to_action(&context.workflow_id, index, action)));
        }
    }
    Ok(None)
}

async fn contexts(
    client: &mut WorkflowServiceClient<Channel>,
    worker_id: &str,
) -> Result<Vec<WorkflowContext>, (&'static str, tonic::Status)> {
    const OPERATION: &str = "GetWorkflowContexts";
    let request = WorkflowContextRequest {
        worker_id: worker_id.to_string(),
    };
    let mut stream = client
        .get_workflow_contexts(request)
        .await
        .map_err(|status| (OPERATION, status))?
        .into_inner();
    let mut contexts = Vec::new();
    while let Some(context) = stream
        .message()
        .await
        .map_err(|status| (OPERATION, status))?
    {
        if contexts.len() == MAX_CONTEXTS {
            return Err((
                OPERATION,
                tonic::Status::out_of_range(format!("more than {MAX_CONTEXTS} workflow contexts")),
            ));
        }
        contexts.push(context);
    }
    Ok(contexts)
}

/// Which action of the workflow is to run: the current one while it is pending or running
/// (running means the worker restarted in the middle of it, so it runs again), the one after
/// it once it succeeded; none when the workflow failed, timed out or has no action left.
fn next_index(context: &WorkflowContext) -> Option<usize> {
    let current = usize::try_from(context.current_action_index).ok()?;
    let next = match context.current_action_state() {
        State::Pending | State::Running => current,
        State::Success => current + 1,
        State::Failed | State::Timeout => return None,
    };
    let total = usize::try_from(context.total_number_of_actions).ok()?;
    (next < total).then_some(next)
}

fn to_action(workflow_id: &str, index: usize, action: WorkflowAction) -> Action {
    Action {
        workflow_id: workflow_id.to_string(),
        // The legacy protocol identifies tasks by name and actions by position.
        task_id: action.task_name.clone(),
        action_id: index.to_string(),
        task_name: action.task_name,
        name: action.name,
        image: action.image,
        timeout: action_timeout(action.timeout),
        command: action.command,
        volumes: action.volumes,
        environment: action.environment,
        pid_host: action.pid == HOST,
        network_namespace: false,
        on_timeout: action.on_timeout,
        on_failure: action.on_failure,
    }
}

pub(super) async fn report(
    channel: Channel,
    worker_id: &str,
    report: &ActionReport,
) -> Result<(), tonic::Status> {
    let status = WorkflowActionStatus {
        workflow_id: report.workflow_id.clone(),
        task_name: report.task_name.clone(),
        action_name: report.action_name.clone(),
        action_status: state(report.state) as i32,
        seconds: i64::try_from(report.duration().as_secs()).unwrap_or(i64::MAX),
        message: report.message.clone(),
        created_at: Some(SystemTime::now().into()),
        worker_id: worker_id.to_string(),
    };
    WorkflowServiceClient::new(channel)
        .report_action_status(status)
        .await
        .map(drop)
}

fn state(state: ActionState) -> State {
    match state {
        ActionState::Running => State::Running,
        ActionState::Success => State::Success,
        ActionState::Failed => State::Failed,
        ActionState::Timeout => State::Timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(index: i64, state: State, total: i64) -> WorkflowContext {
        WorkflowContext {
            workflow_id: "wf".into(),
            current_action_index: index,
            current_action_state: state as i32,
            total_number_of_actions: total,
            ..Default::default()
        }
    }

    #[test]
    fn next_action_index_follows_the_current_state() {
        assert_eq!(
            next_index(&context(0, State::Pending, 3)),
            Some(0),
            "a fresh workflow starts at 0"
        );
        assert_eq!(
            next_index(&context(1, State::Running, 3)),
            Some(1),
            "an interrupted action runs again"
        );
        assert_eq!(next_index(&context(1, State::Success, 3)), Some(2));
        assert_eq!(
            next_index(&context(2, State::Success, 3)),
            None,
            "the last action succeeded"
        );
        assert_eq!(next_index(&context(0, State::Failed, 3)), None);
        assert_eq!(next_index(&context(0, State::Timeout, 3)), None);
    }
}
