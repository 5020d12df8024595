//! Tinkerbell's workflow and action states, and how a worker's report moves them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a workflow or of one of its actions, spelled as Tinkerbell does (`PENDING`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Not started yet.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished successfully (final).
    Success,
    /// Finished with an error (final).
    Failed,
    /// Ran past its timeout (final).
    Timeout,
}

impl State {
    /// The Tinkerbell spelling: `PENDING`, `RUNNING`, `SUCCESS`, `FAILED`, `TIMEOUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Running => "RUNNING",
            State::Success => "SUCCESS",
            State::Failed => "FAILED",
            State::Timeout => "TIMEOUT",
        }
    }

    /// True for the states nothing leaves: success, failure, timeout.
    pub fn is_final(self) -> bool {
        matches!(self, State::Success | State::Failed | State::Timeout)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [
            State::Pending,
            State::Running,
            State::Success,
            State::Failed,
            State::Timeout,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
        .ok_or_else(|| format!("unknown state {text:?}"))
    }
}

/// Why a report cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The worker reported PENDING, which only the provisioner sets.
    #[error("{0} is not a state a worker reports; report RUNNING, SUCCESS, FAILED or TIMEOUT")]
    NotReportable(State),
    /// The workflow has already ended.
    #[error("the workflow already ended {workflow}; this report ({reported}) comes too late")]
    WorkflowEnded {
        /// The state the workflow ended in.
        workflow: State,
        /// The state the worker reported.
        reported: State,
    },
    /// The action has already ended in another state.
    #[error("action {action:?} already ended {state}; this report ({reported}) is stale")]
    Stale {
        /// The action's name.
        action: String,
        /// The state it ended in.
        state: State,
        /// The state the worker reported.
        reported: State,
    },
    /// An earlier action has not succeeded yet.
    #[error("action {action:?} is not next: action {next:?} has not succeeded yet")]
    OutOfOrder {
        /// The reported action's name.
        action: String,
        /// The action that must succeed first.
        next: String,
    },
}

/// What a report does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The action is already in the reported state: acknowledge, change nothing.
    Duplicate,
    /// Move the action and the workflow to these states.
    Apply {
        /// The action's new state.
        action: State,
        /// The workflow's new state.
        workflow: State,
    },
}

/// Decides what a report of `reported` for action `index` does to a workflow in state
/// `workflow` whose actions, in order, are `actions` (name, state).
pub fn decide(
    workflow: State,
    actions: &[(String, State)],
    index: usize,
    reported: State,
) -> Result<Decision, ReportError> {
    if reported == State::Pending {
        return Err(ReportError::NotReportable(reported));
    }
    let (name, state) = &actions[index];
    if *state == reported {
        return Ok(Decision::Duplicate);
    }
    if workflow.is_final() {
        return Err(ReportError::WorkflowEnded { workflow, reported });
    }
    let next = actions
        .iter()
        .position(|(_, state)| *state != State::Success);
    match next {
        Some(next) if next == index => {}
        Some(next) if index > next => {
            return Err(ReportError::OutOfOrder {
                action: name.clone(),
                next: actions[next].0.clone(),
            });
        }
        _ => {
            return Err(ReportError::Stale {
                action: name.clone(),
                state: *state,
                reported,
            });
        }
    }
    let workflow = match reported {
        State::Success if index + 1 == actions.len() => State::Success,
        State::Success | State::Running => State::Running,
        ended => ended,
    };
    Ok(Decision::Apply {
        action: reported,
        workflow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    fn actions(states: &[State]) -> Vec<(String, State)> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("a{i}"), *s))
            .collect()
    }

    #[test]
    fn running_then_success_walks_the_workflow_to_success() {
        let list = actions(&[Success, Pending]);
        assert_eq!(
            decide(Running, &list, 1, Running),
            Ok(Decision::Apply {
                action: Running,
                workflow: Running
            })
        );
        let list = actions(&[Success, Running]);
        assert_eq!(
            decide(Running, &list, 1, Success),
            Ok(Decision::Apply {
                action: Success,
                workflow: Success
            })
        );
        let list = actions(&[Running, Pending]);
        assert_eq!(
            decide(Running, &list, 0, Success),
            Ok(Decision::Apply {
                action: Success,
                workflow: Running
            })
        );
    }

    #[test]
    fn failure_and_timeout_end_the_workflow() {
        let list = actions(&[Running, Pending]);
        assert_eq!(
            decide(Running, &list, 0, Failed),
            Ok(Decision::Apply {
                action: Failed,
                workflow: Failed
            })
        );
        assert_eq!(
            decide(Running, &list, 0, Timeout),
            Ok(Decision::Apply {
                action: Timeout,
                workflow: Timeout
            })
        );
    }

    #[test]
    fn duplicates_are_acknowledged_and_late_reports_refused() {
        let list = actions(&[Failed, Pending]);
        assert_eq!(decide(Failed, &list, 0, Failed), Ok(Decision::Duplicate));
        assert!(matches!(
            decide(Failed, &list, 0, Success),
            Err(ReportError::WorkflowEnded { .. })
        ));
        assert!(matches!(
            decide(Failed, &list, 1, Running),
            Err(ReportError::WorkflowEnded { .. })
        ));
    }

    #[test]
    fn stale_and_out_of_order_reports_are_refused() {
        let list = actions(&[Success, Running, Pending]);
        assert!(matches!(
            decide(Running, &list, 0, Failed),
            Err(ReportError::Stale { .. })
        ));
        assert!(matches!(
            decide(Running, &list, 2, Running),
            Err(ReportError::OutOfOrder { .. })
        ));
        assert_eq!(
            decide(Running, &list, 1, Pending),
            Err(ReportError::NotReportable(Pending))
        );
    }
}
