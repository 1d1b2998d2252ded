//! gRPC: echo-basic's `GrpcEcho` service and the suite's client, with tonic.
//!
//! The messages of echo-basic's `grpcecho.proto` (package
//! `gateway_api_conformance.echo_basic.grpcecho`) are declared here with prost's derive
//! (same field numbers, no code generation). The service answers `Echo` and `EchoTwo` with
//! the request's metadata (`:authority` first, then every header), the method's fully
//! qualified name and the pod's context; `EchoThree` and anything else is `UNIMPLEMENTED`.
//!
//! The client is tonic's over a fresh HTTP/2 connection per call (prior knowledge), with
//! the case's `:authority` (else the Gateway's address) and metadata, as `grpc.DefaultClient`
//! sends them; an answer that is not gRPC gets its code from the HTTP status, as grpc-go's
//! client maps it. [`compare`] is upstream's `compareResponse`: the status code, then for
//! `OK` the method, the namespace (when expected) and the pod's name prefix. Upstream
//! compares no headers (several `Response.Headers` of `GRPCRouteRequestHeaderModifier`'s
//! literals contradict its route: three rules share the `Echo` match, so only the first
//! one's filter applies), so neither does the harness; what the backend saw is shown when a
//! case fails.

use std::collections::BTreeMap;
use std::future::Ready;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

use crate::backends::TlsFacts;
use crate::fixture::Pod;

/// echo-basic's gRPC package and service.
pub const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

/// `EchoRequest` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {}

/// `Header`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// Name (lower case, as gRPC metadata).
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `Context`: where the server runs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodContext {
    /// Namespace.
    #[prost(string, tag = "1")]
    pub namespace: String,
    /// Ingress name (empty).
    #[prost(string, tag = "2")]
    pub ingress: String,
    /// `SERVICE_NAME`.
    #[prost(string, tag = "3")]
    pub service_name: String,
    /// Pod name.
    #[prost(string, tag = "4")]
    pub pod: String,
}

/// `TLSAssertions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TlsAssertions {
    /// `TLSv1.3`, …
    #[prost(string, tag = "1")]
    pub version: String,
    /// ALPN.
    #[prost(string, tag = "2")]
    pub negotiated_protocol: String,
    /// SNI.
    #[prost(string, tag = "3")]
    pub server_name: String,
    /// Cipher suite.
    #[prost(string, tag = "4")]
    pub cipher_suite: String,
    /// Client certificates (PEM).
    #[prost(string, repeated, tag = "5")]
    pub peer_certificates: Vec<String>,
}

/// `Assertions`: what the server saw.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Assertions {
    /// `/<package>.<service>/<method>`.
    #[prost(string, tag = "1")]
    pub fully_qualified_method: String,
    /// The request's metadata.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<Header>,
    /// `:authority`.
    #[prost(string, tag = "3")]
    pub authority: String,
    /// The pod.
    #[prost(message, optional, tag = "4")]
    pub context: Option<PodContext>,
    /// The TLS connection, on the TLS port.
    #[prost(message, optional, tag = "5")]
    pub tls_assertions: Option<TlsAssertions>,
}

/// `EchoResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoResponse {
    /// What the server saw.
    #[prost(message, optional, tag = "1")]
    pub assertions: Option<Assertions>,
    /// The request.
    #[prost(message, optional, tag = "2")]
    pub request: Option<EchoRequest>,
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// A unary handler answering with a response computed beforehand.
struct Fixed(EchoResponse);

impl tonic::server::UnaryService<EchoRequest> for Fixed {
    type Response = EchoResponse;
    type Future = Ready<Result<tonic::Response<EchoResponse>, Status>>;

    fn call(&mut self, _request: tonic::Request<EchoRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(self.0.clone())))
    }
}

/// Answers one request of the `GrpcEcho` service.
pub async fn serve(req: Request<Incoming>, pod: &Pod, tls: Option<&TlsFacts>) -> Response<tonic::body::Body> {
    let path = req.uri().path().to_owned();
    let method = path.strip_prefix('/').and_then(|p| p.strip_prefix(SERVICE)).and_then(|p| p.strip_prefix('/'));
    if !matches!(method, Some("Echo" | "EchoTwo")) {
        return Status::unimplemented(format!("unknown method {path}")).into_http();
    }
    let authority = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
    let mut headers = vec![Header { key: ":authority".to_owned(), value: authority.clone() }];
    for (name, value) in req.headers() {
        headers.push(Header {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        });
    }
    let response = EchoResponse {
        assertions: Some(Assertions {
            fully_qualified_method: path,
            headers,
            authority,
            context: Some(PodContext {
                namespace: pod.namespace.clone(),
                ingress: String::new(),
                service_name: pod.env_or("SERVICE_NAME", ""),
                pod: pod.name.clone(),
            }),
            tls_assertions: tls.map(|t| TlsAssertions {
                version: t.version.clone(),
                negotiated_protocol: t.negotiated_protocol.clone(),
                server_name: t.server_name.clone(),
                cipher_suite: t.cipher_suite.clone(),
                peer_certificates: Vec::new(),
            }),
        }),
        request: Some(EchoRequest {}),
    };
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<EchoResponse, EchoRequest>::default());
    grpc.unary(Fixed(response), req).await
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// A `grpc.ExpectedResponse`.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcCase {
    /// `Echo`, `EchoTwo` or `EchoThree`.
    pub method: &'static str,
    /// `:authority` to send; empty: the Gateway's address.
    pub authority: String,
    /// Metadata to send, names as written.
    pub metadata: Vec<(String, String)>,
    /// Expected status.
    pub code: Code,
    /// Pod name prefix.
    pub backend: String,
    /// Namespace, when expected.
    pub namespace: String,
}

impl GrpcCase {
    /// `/<service>/<method>`.
    pub fn path(&self) -> String {
        format!("/{SERVICE}/{}", self.method)
    }

    /// A label as `GetTestCaseName` writes it.
    pub fn label(&self) -> String {
        let meta = if self.metadata.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self.metadata.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!(" with headers '{{{}}}'", pairs.join(","))
        };
        let to = if self.backend.is_empty() {
            format!("receive {:?}", self.code)
        } else {
            format!("go to {}", self.backend)
        };
        format!("gRPC {}{}{meta} should {to}", self.authority, self.path())
    }
}

/// The gRPC code named `grpc:<Name>` (`codes.Code.String()`).
fn code(name: &str) -> Result<Code, String> {
    let name = name.strip_prefix("grpc:").unwrap_or(name);
    Ok(match name {
        "OK" | "" => Code::Ok,
        "Canceled" => Code::Cancelled,
        "Unknown" => Code::Unknown,
        "InvalidArgument" => Code::InvalidArgument,
        "DeadlineExceeded" => Code::DeadlineExceeded,
        "NotFound" => Code::NotFound,
        "AlreadyExists" => Code::AlreadyExists,
        "PermissionDenied" => Code::PermissionDenied,
        "ResourceExhausted" => Code::ResourceExhausted,
        "FailedPrecondition" => Code::FailedPrecondition,
        "Aborted" => Code::Aborted,
        "OutOfRange" => Code::OutOfRange,
        "Unimplemented" => Code::Unimplemented,
        "Internal" => Code::Internal,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "Unauthenticated" => Code::Unauthenticated,
        other => return Err(format!("unknown gRPC code {other:?}")),
    })
}

/// Reads a `grpc.ExpectedResponse` literal.
pub fn parse(body: &Value) -> Result<GrpcCase, String> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let present = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    let method = match (present("EchoRequest"), present("EchoTwoRequest"), present("EchoThreeRequest")) {
        (true, false, false) => "Echo",
        (false, true, false) => "EchoTwo",
        (false, false, true) => "EchoThree",
        _ => return Err("expected exactly one of EchoRequest, EchoTwoRequest, EchoThreeRequest".to_owned()),
    };
    let meta = body.get("RequestMetadata").unwrap_or(&Value::Null);
    let mut metadata: Vec<(String, String)> = meta
        .get("Metadata")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    metadata.sort();
    let response = body.get("Response").unwrap_or(&Value::Null);
    Ok(GrpcCase {
        method,
        authority: text(meta, "Authority"),
        metadata,
        code: code(&text(response, "Code"))?,
        backend: text(body, "Backend"),
        namespace: text(body, "Namespace"),
    })
}

/// What a call came back with.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status (`Unavailable` when no connection could be made, as grpc-go reports it).
    pub code: Code,
    /// The status message.
    pub message: String,
    /// The answer, for `OK`.
    pub response: Option<EchoResponse>,
}

impl Reply {
    /// The pod that answered.
    pub fn pod(&self) -> &str {
        self.context().map(|c| c.pod.as_str()).unwrap_or_default()
    }

    fn context(&self) -> Option<&PodContext> {
        self.response.as_ref()?.assertions.as_ref()?.context.as_ref()
    }

    /// A short description for failure messages.
    pub fn describe(&self) -> String {
        let Some(a) = self.response.as_ref().and_then(|r| r.assertions.as_ref()) else {
            return format!("status {:?} {:?}", self.code, self.message);
        };
        let mut headers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for h in &a.headers {
            headers.entry(h.key.as_str()).or_default().push(h.value.as_str());
        }
        format!(
            "status {:?}; pod {} ({}) saw {} authority {} metadata {headers:?}",
            self.code,
            self.pod(),
            self.context().map(|c| c.namespace.as_str()).unwrap_or_default(),
            a.fully_qualified_method,
            a.authority
        )
    }
}

/// `compareResponse`.
pub fn compare(case: &GrpcCase, reply: &Reply) -> Result<(), String> {
    if case.code != reply.code {
        return Err(format!(
            "expected status code to be {:?}, but got {:?} ({})",
            case.code, reply.code, reply.message
        ));
    }
    if reply.code == Code::Ok {
        let assertions = reply.response.as_ref().and_then(|r| r.assertions.as_ref());
        let method = assertions.map(|a| a.fully_qualified_method.as_str()).unwrap_or_default();
        if method != case.path() {
            return Err(format!("expected path to be {}, got {method}", case.path()));
        }
        let namespace = reply.context().map(|c| c.namespace.as_str()).unwrap_or_default();
        if !case.namespace.is_empty() && case.namespace != namespace {
            return Err(format!("expected namespace to be {}, got {namespace}", case.namespace));
        }
        if !reply.pod().starts_with(&case.backend) {
            return Err(format!("expected pod name to start with {}, got {}", case.backend, reply.pod()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// hyper's HTTP/2 connection as the tower service tonic's client drives.
///
/// An answer that is not gRPC (a status other than 200, or a content type other than
/// `application/grpc…`) reaches tonic without its body, so that its code comes from the
/// HTTP status (404 → `UNIMPLEMENTED`, 503 → `UNAVAILABLE`, …) as grpc-go's client maps it,
/// instead of the body being decoded as gRPC frames.
struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<Request<tonic::body::Body>> for H2 {
    type Response = Response<tonic::body::Body>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let sent = self.0.send_request(req);
        Box::pin(async move {
            let resp = sent.await?;
            let is_grpc = resp.status() == http::StatusCode::OK
                && resp
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/grpc"));
            let (parts, body) = resp.into_parts();
            let body = if is_grpc { tonic::body::Body::new(body) } else { tonic::body::Body::default() };
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// One call of the case's method to `addr`, with `jitter` added as `x-jitter` metadata when
/// given (`AddEntropy`).
pub fn call(addr: SocketAddr, case: &GrpcCase, jitter: Option<&str>) -> Result<Reply, String> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    let authority = if case.authority.is_empty() { addr.to_string() } else { case.authority.clone() };
    let origin: http::Uri =
        format!("http://{authority}").parse().map_err(|e| format!("authority {authority:?}: {e}"))?;
    let path: http::uri::PathAndQuery = case.path().parse().map_err(|e| format!("path: {e}"))?;
    let mut request = tonic::Request::new(EchoRequest {});
    let jitter = jitter.map(|j| ("x-jitter".to_owned(), j.to_owned()));
    for (name, value) in case.metadata.iter().cloned().chain(jitter) {
        let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("metadata name {name:?}: {e}"))?;
        let value: MetadataValue<_> = value.parse().map_err(|e| format!("metadata value {value:?}: {e}"))?;
        request.metadata_mut().append(key, value);
    }
    runtime.block_on(async {
        let exchange = async {
            let tcp = match tokio::net::TcpStream::connect(addr).await {
                Ok(t) => t,
                Err(e) => {
                    return Ok(Reply {
                        code: Code::Unavailable,
                        message: format!("connect {addr}: {e}"),
                        response: None,
                    })
                }
            };
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(conn);
            let mut grpc = tonic::client::Grpc::with_origin(H2(sender), origin);
            grpc.ready().await.map_err(|e| format!("connection not ready: {e}"))?;
            let result = grpc.unary(request, path, ProstCodec::<EchoRequest, EchoResponse>::default()).await;
            Ok(match result {
                Ok(resp) => Reply { code: Code::Ok, message: String::new(), response: Some(resp.into_inner()) },
                Err(status) => Reply { code: status.code(), message: status.message().to_owned(), response: None },
            })
        };
        tokio::time::timeout(Duration::from_secs(10), exchange).await.map_err(|_| "gRPC call timed out".to_owned())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_parse_with_upstreams_defaults() {
        let c = parse(&json!({"EchoTwoRequest": {}, "Backend": "grpc-infra-backend-v2",
            "Namespace": "gateway-conformance-infra", "RequestMetadata": {"Metadata": {"Version": "two", "Color": "blue"}}}))
        .unwrap();
        assert_eq!(c.path(), "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/EchoTwo");
        assert_eq!(c.code, Code::Ok);
        assert_eq!(c.metadata, vec![("Color".into(), "blue".into()), ("Version".into(), "two".into())]);
        let c = parse(&json!({"EchoThreeRequest": {}, "Response": {"Code": "grpc:Unimplemented"}})).unwrap();
        assert_eq!((c.method, c.code), ("EchoThree", Code::Unimplemented));
        assert!(parse(&json!({"EchoRequest": {}, "EchoTwoRequest": {}})).is_err());
    }

    #[test]
    fn comparison_is_upstreams() {
        let case = parse(&json!({"EchoRequest": {}, "Backend": "grpc-infra-backend-v1", "Namespace": "ns"})).unwrap();
        let reply = |method: &str, ns: &str, pod: &str| Reply {
            code: Code::Ok,
            message: String::new(),
            response: Some(EchoResponse {
                assertions: Some(Assertions {
                    fully_qualified_method: format!("/{SERVICE}/{method}"),
                    headers: Vec::new(),
                    authority: String::new(),
                    context: Some(PodContext {
                        namespace: ns.into(),
                        ingress: String::new(),
                        service_name: String::new(),
                        pod: pod.into(),
                    }),
                    tls_assertions: None,
                }),
                request: None,
            }),
        };
        assert_eq!(compare(&case, &reply("Echo", "ns", "grpc-infra-backend-v1-abc-def")), Ok(()));
        assert!(compare(&case, &reply("EchoTwo", "ns", "grpc-infra-backend-v1-a")).unwrap_err().contains("path"));
        assert!(compare(&case, &reply("Echo", "other", "grpc-infra-backend-v1-a")).unwrap_err().contains("namespace"));
        assert!(compare(&case, &reply("Echo", "ns", "grpc-infra-backend-v2-a")).unwrap_err().contains("pod name"));
        let failed = Reply { code: Code::Unimplemented, message: "x".into(), response: None };
        assert!(compare(&case, &failed).unwrap_err().contains("Unimplemented"));
    }
}
