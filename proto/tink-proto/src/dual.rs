//! One gRPC service that speaks both protocols on one port.
//!
//! tonic routes by service name, and both protocols are `proto.WorkflowService`, so
//! neither generated server can be added next to the other. This service routes by
//! method instead: `GetAction` to the current protocol, `GetWorkflowContexts` and
//! `GetWorkflowActions` to the legacy one, and the shared `ReportActionStatus` through
//! [`ReportActionStatusCodec`], which hands each request to the implementation of the
//! protocol it belongs to.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::current::workflow_service_server::{
    WorkflowService as CurrentService, WorkflowServiceServer as CurrentServer,
};
use crate::legacy::workflow_service_server::{
    WorkflowService as LegacyService, WorkflowServiceServer as LegacyServer,
};
use crate::report::{ActionStatusReport, ReportAck, ReportActionStatusCodec};

const GET_ACTION: &str = "/proto.WorkflowService/GetAction";
const REPORT_ACTION_STATUS: &str = "/proto.WorkflowService/ReportActionStatus";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Serves `T`'s implementations of both protocols as one `proto.WorkflowService`.
pub struct DualWorkflowServer<T> {
    inner: Arc<T>,
    current: CurrentServer<T>,
    legacy: LegacyServer<T>,
}

impl<T> DualWorkflowServer<T> {
    /// Serves `inner`'s implementations of both protocols.
    pub fn new(inner: T) -> Self {
        Self::from_arc(Arc::new(inner))
    }

    /// Like [`DualWorkflowServer::new`], for a service already shared behind an `Arc`.
    pub fn from_arc(inner: Arc<T>) -> Self {
        Self {
            current: CurrentServer::from_arc(Arc::clone(&inner)),
            legacy: LegacyServer::from_arc(Arc::clone(&inner)),
            inner,
        }
    }
}

impl<T> Clone for DualWorkflowServer<T> {
    fn clone(&self) -> Self {
        Self::from_arc(Arc::clone(&self.inner))
    }
}

impl<T> NamedService for DualWorkflowServer<T> {
    const NAME: &'static str = crate::SERVICE_NAME;
}

impl<T> tower_service::Service<http::Request<Body>> for DualWorkflowServer<T>
where
    T: CurrentService + LegacyService,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match request.uri().path() {
            REPORT_ACTION_STATUS => {
                let method = ReportBothProtocols(Arc::clone(&self.inner));
                Box::pin(async move {
                    let mut grpc = Grpc::new(ReportActionStatusCodec);
                    Ok(grpc.unary(method, request).await)
                })
            }
            GET_ACTION => self.current.call(request),
            // The legacy server answers UNIMPLEMENTED for anything it does not know.
            _ => self.legacy.call(request),
        }
    }
}

struct ReportBothProtocols<T>(Arc<T>);

impl<T> UnaryService<ActionStatusReport> for ReportBothProtocols<T>
where
    T: CurrentService + LegacyService,
{
    type Response = ReportAck;
    type Future = BoxFuture<Result<Response<ReportAck>, Status>>;

    fn call(&mut self, request: Request<ActionStatusReport>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            let (metadata, extensions, report) = request.into_parts();
            match report {
                ActionStatusReport::Current(message) => {
                    let request = Request::from_parts(metadata, extensions, message);
                    CurrentService::report_action_status(&*inner, request).await?;
                }
                ActionStatusReport::Legacy(message) => {
                    let request = Request::from_parts(metadata, extensions, message);
                    LegacyService::report_action_status(&*inner, request).await?;
                }
            }
            Ok(Response::new(ReportAck))
        })
    }
}
