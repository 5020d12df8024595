//! Telling `ActionStatusRequest` (current) and `WorkflowActionStatus` (legacy) apart.
//!
//! Both arrive on `/proto.WorkflowService/ReportActionStatus`, so the server decides from
//! the bytes which message it got. No crate does this (it is specific to these two
//! messages), hence the small field walker here.
//!
//! The rule, field by field (number, wire type):
//!
//! | field | current `ActionStatusRequest` | legacy `WorkflowActionStatus` |
//! |---|---|---|
//! | 1, 2, 3 | strings | strings — says nothing |
//! | 4 | `action_id`, string → **current** | `action_status`, enum (varint) → **legacy** |
//! | 5 | `action_name`, string → **current** | `seconds`, int64 (varint) → **legacy** |
//! | 6 | `action_state`, enum (varint) → **current** | `message`, string → **legacy** |
//! | 7 | Timestamp | Timestamp — says nothing |
//! | 8 | Timestamp | `worker_id`, string — both length-delimited, says nothing |
//! | 9, 10 | `execution_duration`, `message` → **current** | absent |
//!
//! A message with evidence for one side only is that side's. Evidence for both sides is
//! refused ([`ClassifyError::Contradictory`]), and so is a message with none: that can
//! only be a current report without `action_id`, `action_name` and state, or a legacy
//! report of `STATE_PENDING` with zero seconds and no message, and neither is a report
//! a worker sends. Other field numbers are ignored, as protobuf ignores unknown fields.

use bytes::{Buf, Bytes};
use prost::Message;
use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::{current, legacy};

/// Which protocol a `ReportActionStatus` request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportProtocol {
    /// `ActionStatusRequest`, tinkerbell/tinkerbell v0.17 and later.
    Current,
    /// `WorkflowActionStatus`, tink v0.9 to v0.12 (EMT's worker).
    Legacy,
}

/// Why a `ReportActionStatus` request could not be attributed to a protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    /// The bytes do not decode as protobuf; carries the decoder's message.
    #[error(
        "the message is not valid protobuf ({0}); send an ActionStatusRequest or a WorkflowActionStatus"
    )]
    Malformed(String),
    /// A known field number arrived with a wire type neither message gives it.
    #[error(
        "field {field} has wire type {found:?}, which neither ActionStatusRequest nor WorkflowActionStatus uses"
    )]
    UnexpectedWireType {
        /// The protobuf field number.
        field: u32,
        /// The wire type the field arrived with.
        found: WireType,
    },
    /// Fields of both messages are present.
    #[error(
        "the message mixes ActionStatusRequest fields (current protocol) and WorkflowActionStatus fields (legacy protocol); send one or the other"
    )]
    Contradictory,
    /// No field tells the protocols apart (for example an empty message).
    #[error(
        "the message names no action state: set action_id and action_state (ActionStatusRequest) or a non-PENDING action_status (WorkflowActionStatus)"
    )]
    Undetermined,
}

/// Applies the rule in the module documentation to an encoded report.
pub fn classify(mut bytes: &[u8]) -> Result<ReportProtocol, ClassifyError> {
    let mut current_evidence = false;
    let mut legacy_evidence = false;
    while bytes.has_remaining() {
        let (field, wire_type) = decode_key(&mut bytes).map_err(malformed)?;
        match evidence(field, wire_type)? {
            Some(ReportProtocol::Current) => current_evidence = true,
            Some(ReportProtocol::Legacy) => legacy_evidence = true,
            None => {}
        }
        skip_field(wire_type, field, &mut bytes, DecodeContext::default()).map_err(malformed)?;
    }
    match (current_evidence, legacy_evidence) {
        (true, false) => Ok(ReportProtocol::Current),
        (false, true) => Ok(ReportProtocol::Legacy),
        (true, true) => Err(ClassifyError::Contradictory),
        (false, false) => Err(ClassifyError::Undetermined),
    }
}

fn malformed(error: prost::DecodeError) -> ClassifyError {
    ClassifyError::Malformed(error.to_string())
}

/// What one field says about the protocol.
fn evidence(field: u32, wire_type: WireType) -> Result<Option<ReportProtocol>, ClassifyError> {
    use ReportProtocol::{Current, Legacy};
    use WireType::{LengthDelimited, Varint};
    let verdict = match (field, wire_type) {
        (1..=3 | 7 | 8, LengthDelimited) => None,
        (4 | 5, LengthDelimited) | (6, Varint) | (9 | 10, LengthDelimited) => Some(Current),
        (4 | 5, Varint) | (6, LengthDelimited) => Some(Legacy),
        (1..=10, found) => return Err(ClassifyError::UnexpectedWireType { field, found }),
        _ => None,
    };
    Ok(verdict)
}

/// A `ReportActionStatus` request of either protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionStatusReport {
    /// An `ActionStatusRequest` of the current protocol (v0.17+).
    Current(current::ActionStatusRequest),
    /// A `WorkflowActionStatus` of the legacy protocol (tink v0.9 to v0.12).
    Legacy(legacy::WorkflowActionStatus),
}

impl ActionStatusReport {
    /// Classifies and decodes an encoded report.
    pub fn decode(bytes: Bytes) -> Result<Self, Status> {
        let protocol = classify(&bytes)
            .map_err(|error| Status::invalid_argument(format!("ReportActionStatus: {error}")))?;
        let decoded = match protocol {
            ReportProtocol::Current => {
                current::ActionStatusRequest::decode(bytes).map(ActionStatusReport::Current)
            }
            ReportProtocol::Legacy => {
                legacy::WorkflowActionStatus::decode(bytes).map(ActionStatusReport::Legacy)
            }
        };
        decoded.map_err(|error| {
            Status::invalid_argument(format!("ReportActionStatus: decoding the message: {error}"))
        })
    }
}

/// The answer to a report: `ActionStatusResponse` (current) or `Empty` (legacy). Both
/// are empty messages, so they are the same bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportAck;

/// The gRPC codec of the shared `ReportActionStatus` method: decodes either request
/// message, encodes the (empty) answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportActionStatusCodec;

impl Codec for ReportActionStatusCodec {
    type Encode = ReportAck;
    type Decode = ActionStatusReport;
    type Encoder = ReportAckEncoder;
    type Decoder = ActionStatusReportDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ReportAckEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ActionStatusReportDecoder
    }
}

/// Encodes a [`ReportAck`] as the empty message (zero bytes); the codec's encoder.
#[derive(Debug, Clone, Copy)]
pub struct ReportAckEncoder;

impl Encoder for ReportAckEncoder {
    type Item = ReportAck;
    type Error = Status;

    fn encode(&mut self, _ack: ReportAck, _buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // An empty message encodes to zero bytes.
        Ok(())
    }
}

/// Decodes a request with [`ActionStatusReport::decode`]; the codec's decoder.
#[derive(Debug, Clone, Copy)]
pub struct ActionStatusReportDecoder;

impl Decoder for ActionStatusReportDecoder {
    type Item = ActionStatusReport;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<ActionStatusReport>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        ActionStatusReport::decode(bytes).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use current::{ActionMessage, ActionStatusRequest, StateType};
    use legacy::{State, WorkflowActionStatus};

    fn encoded(message: &impl Message) -> Vec<u8> {
        message.encode_to_vec()
    }

    #[test]
    fn a_full_current_report_is_current() {
        let report = ActionStatusRequest {
            workflow_id: Some("default/wf".into()),
            agent_id: Some("52:54:00:00:00:01".into()),
            task_id: Some("task".into()),
            action_id: Some("action".into()),
            action_name: Some("write".into()),
            action_state: Some(StateType::Success as i32),
            execution_start: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            execution_stop: Some(prost_types::Timestamp {
                seconds: 2,
                nanos: 0,
            }),
            execution_duration: Some("1s".into()),
            message: Some(ActionMessage {
                message: Some("done".into()),
            }),
        };
        let bytes = encoded(&report);
        assert_eq!(classify(&bytes), Ok(ReportProtocol::Current));
        assert_eq!(
            ActionStatusReport::decode(bytes.into()).unwrap(),
            ActionStatusReport::Current(report)
        );
    }

    #[test]
    fn a_full_legacy_report_is_legacy() {
        let report = WorkflowActionStatus {
            workflow_id: "wf".into(),
            task_name: "os".into(),
            action_name: "write".into(),
            action_status: State::Failed as i32,
            seconds: 3,
            message: "exit 1".into(),
            created_at: Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 0,
            }),
            worker_id: "hw-1".into(),
        };
        let bytes = encoded(&report);
        assert_eq!(classify(&bytes), Ok(ReportProtocol::Legacy));
        assert_eq!(
            ActionStatusReport::decode(bytes.into()).unwrap(),
            ActionStatusReport::Legacy(report)
        );
    }

    #[test]
    fn a_current_report_with_only_the_state_is_current() {
        // UNSPECIFIED is explicitly present (proto3 optional), so field 6 is on the wire.
        let report = ActionStatusRequest {
            action_state: Some(StateType::Unspecified as i32),
            ..Default::default()
        };
        assert_eq!(classify(&encoded(&report)), Ok(ReportProtocol::Current));
    }

    #[test]
    fn a_current_report_with_only_the_action_id_is_current() {
        let report = ActionStatusRequest {
            workflow_id: Some("wf".into()),
            action_id: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(classify(&encoded(&report)), Ok(ReportProtocol::Current));
    }

    #[test]
    fn a_legacy_running_report_with_defaults_omitted_is_legacy() {
        // seconds 0 and message "" are not on the wire (proto3 implicit presence); the
        // non-zero state is.
        let report = WorkflowActionStatus {
            workflow_id: "wf".into(),
            task_name: "os".into(),
            action_name: "write".into(),
            action_status: State::Running as i32,
            worker_id: "hw-1".into(),
            ..Default::default()
        };
        assert_eq!(classify(&encoded(&report)), Ok(ReportProtocol::Legacy));
    }

    #[test]
    fn a_legacy_pending_report_with_seconds_or_message_is_legacy() {
        let with_seconds = WorkflowActionStatus {
            seconds: 2,
            ..Default::default()
        };
        let with_message = WorkflowActionStatus {
            message: "m".into(),
            ..Default::default()
        };
        assert_eq!(
            classify(&encoded(&with_seconds)),
            Ok(ReportProtocol::Legacy)
        );
        assert_eq!(
            classify(&encoded(&with_message)),
            Ok(ReportProtocol::Legacy)
        );
    }

    #[test]
    fn a_message_without_any_state_is_refused() {
        let legacy_pending = WorkflowActionStatus {
            workflow_id: "wf".into(),
            task_name: "os".into(),
            worker_id: "hw".into(),
            created_at: Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            classify(&encoded(&legacy_pending)),
            Err(ClassifyError::Undetermined)
        );
        assert_eq!(classify(&[]), Err(ClassifyError::Undetermined));
        let status = ActionStatusReport::decode(Bytes::new()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("action_id"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn mixed_fields_are_refused() {
        // Field 4 as a string (current action_id) and field 5 as a varint (legacy seconds).
        let bytes = [0x22, 0x01, b'a', 0x28, 0x03];
        assert_eq!(classify(&bytes), Err(ClassifyError::Contradictory));
    }

    #[test]
    fn a_known_field_with_a_foreign_wire_type_is_refused() {
        // Field 6 as fixed32: neither message has that.
        let bytes = [0x35, 0, 0, 0, 0];
        assert_eq!(
            classify(&bytes),
            Err(ClassifyError::UnexpectedWireType {
                field: 6,
                found: WireType::ThirtyTwoBit
            })
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // Field 15 varint, then legacy action_status = RUNNING.
        let bytes = [0x78, 0x01, 0x20, 0x01];
        assert_eq!(classify(&bytes), Ok(ReportProtocol::Legacy));
    }

    #[test]
    fn truncated_messages_are_malformed() {
        let bytes = [0x22, 0x05, b'a'];
        assert!(matches!(classify(&bytes), Err(ClassifyError::Malformed(_))));
    }
}
