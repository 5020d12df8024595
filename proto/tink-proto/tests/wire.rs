//! Wire compatibility: the generated messages put the bytes upstream's field numbers and
//! types give, computed here by hand (key = field << 3 | wire type).

use prost::Message;
use tink_proto::current::{
    ActionMessage, ActionRequest, ActionResponse, ActionStatusRequest, AgentAttributes, Cpu,
    Namespaces, StateType,
};
use tink_proto::legacy::{
    State, WorkflowAction, WorkflowActionList, WorkflowActionStatus, WorkflowContext,
    WorkflowContextRequest,
};

#[test]
fn action_request_agent_id_and_nested_cpu() {
    let request = ActionRequest {
        agent_id: Some("ab".into()),
        agent_attributes: Some(AgentAttributes {
            cpu: Some(Cpu {
                total_cores: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    // 1:LEN "ab"; 2:LEN { 1:LEN { 1:varint 4 } }
    let expected = [0x0a, 0x02, b'a', b'b', 0x12, 0x04, 0x0a, 0x02, 0x08, 0x04];
    assert_eq!(request.encode_to_vec(), expected);
    assert_eq!(ActionRequest::decode(&expected[..]).unwrap(), request);
}

#[test]
fn action_response_timeout_command_and_namespaces() {
    let response = ActionResponse {
        timeout: Some(60),
        command: vec!["a".into()],
        pid: Some("host".into()),
        namespaces: Some(Namespaces {
            network: None,
            pid: Some("host".into()),
        }),
        ..Default::default()
    };
    let expected = [
        0x38, 0x3c, // 7: varint 60
        0x42, 0x01, b'a', // 8: LEN "a"
        0x5a, 0x04, b'h', b'o', b's', b't', // 11: LEN "host"
        0x62, 0x06, 0x12, 0x04, b'h', b'o', b's', b't', // 12: { 2: "host" }
    ];
    assert_eq!(response.encode_to_vec(), expected);
}

#[test]
fn explicit_presence_puts_default_values_on_the_wire() {
    let response = ActionResponse {
        timeout: Some(0),
        ..Default::default()
    };
    assert_eq!(response.encode_to_vec(), [0x38, 0x00]);
    assert_eq!(ActionResponse::default().encode_to_vec(), Vec::<u8>::new());
}

#[test]
fn action_status_request_state_times_and_message() {
    let request = ActionStatusRequest {
        action_id: Some("x".into()),
        action_state: Some(StateType::Success as i32),
        execution_start: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        execution_duration: Some("1s".into()),
        message: Some(ActionMessage {
            message: Some("ok".into()),
        }),
        ..Default::default()
    };
    let expected = [
        0x22, 0x01, b'x', // 4: LEN "x"
        0x30, 0x05, // 6: varint SUCCESS = 5
        0x3a, 0x02, 0x08, 0x01, // 7: Timestamp { seconds: 1 }
        0x4a, 0x02, b'1', b's', // 9: LEN "1s"
        0x52, 0x04, 0x0a, 0x02, b'o', b'k', // 10: { 1: "ok" }
    ];
    assert_eq!(request.encode_to_vec(), expected);
}

#[test]
fn state_numbers_match_upstream() {
    assert_eq!(StateType::Unspecified as i32, 0);
    assert_eq!(StateType::Pending as i32, 1);
    assert_eq!(StateType::Running as i32, 2);
    assert_eq!(StateType::Failed as i32, 3);
    assert_eq!(StateType::Timeout as i32, 4);
    assert_eq!(StateType::Success as i32, 5);
    assert_eq!(State::Pending as i32, 0);
    assert_eq!(State::Running as i32, 1);
    assert_eq!(State::Failed as i32, 2);
    assert_eq!(State::Timeout as i32, 3);
    assert_eq!(State::Success as i32, 4);
}

#[test]
fn legacy_context_request_and_context() {
    let request = WorkflowContextRequest {
        worker_id: "w".into(),
    };
    assert_eq!(request.encode_to_vec(), [0x0a, 0x01, b'w']);
    let context = WorkflowContext {
        workflow_id: "f".into(),
        current_action_index: 2,
        current_action_state: State::Success as i32,
        total_number_of_actions: 3,
        ..Default::default()
    };
    let expected = [0x0a, 0x01, b'f', 0x28, 0x02, 0x30, 0x04, 0x38, 0x03];
    assert_eq!(context.encode_to_vec(), expected);
}

#[test]
fn legacy_action_list() {
    let list = WorkflowActionList {
        action_list: vec![WorkflowAction {
            timeout: 60,
            on_timeout: vec!["t".into()],
            worker_id: "w".into(),
            pid: "host".into(),
            ..Default::default()
        }],
    };
    let action = [
        0x20, 0x3c, // 4: varint 60
        0x32, 0x01, b't', // 6: LEN "t"
        0x42, 0x01, b'w', // 8: LEN "w"
        0x5a, 0x04, b'h', b'o', b's', b't', // 11: LEN "host"
    ];
    let mut expected = vec![0x0a, u8::try_from(action.len()).unwrap()];
    expected.extend_from_slice(&action);
    assert_eq!(list.encode_to_vec(), expected);
}

#[test]
fn legacy_action_status_seconds_and_worker() {
    let status = WorkflowActionStatus {
        action_status: State::Running as i32,
        seconds: 300,
        message: "m".into(),
        worker_id: "w".into(),
        ..Default::default()
    };
    let expected = [
        0x20, 0x01, // 4: varint RUNNING = 1
        0x28, 0xac, 0x02, // 5: varint 300
        0x32, 0x01, b'm', // 6: LEN "m"
        0x42, 0x01, b'w', // 8: LEN "w"
    ];
    assert_eq!(status.encode_to_vec(), expected);
}
