//! Request-head checks (RFC 9112/9110): framing and fragments on the head as sent (the
//! HTTP/1.1 guard's check), `Host` and methods on the head as hyper parses it, and the
//! hop-by-hop header stripping that forwarding does; heads that httparse (hyper's parser)
//! refuses never reach them.

#![no_main]

use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{Request, Version};
use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::{check_head, check_request, strip_hop_by_hop};

fuzz_target!(|data: &[u8]| {
    let as_sent = check_head(data);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = head.parse(data) else {
        return;
    };
    let (Some(method), Some(path), Some(version)) = (head.method, head.path, head.version) else {
        return;
    };
    let version = if version == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
    let mut builder = Request::builder().method(method).uri(path).version(version);
    for header in head.headers.iter() {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(header.name.as_bytes()), HeaderValue::from_bytes(header.value))
        else {
            return;
        };
        builder = builder.header(name, value);
    }
    let Ok(mut request) = builder.body(()) else {
        return;
    };
    let verdict = check_request(&request);
    let headers = request.headers();
    // Never both framings, never a fragment, and never a Host that is a list, holds
    // userinfo, a path or spaces.
    if headers.contains_key(CONTENT_LENGTH) && headers.contains_key(TRANSFER_ENCODING) || path.contains('#') {
        assert!(matches!(as_sent, Some(Err((_, true)))), "{as_sent:?}");
    }
    if headers.get_all(HOST).iter().any(|h| h.as_bytes().iter().any(|b| b"@,/ ".contains(b))) {
        assert!(verdict.is_err(), "{:?}", headers.get(HOST));
    }
    if let Err((status, _)) = verdict {
        assert!(status.is_client_error() || status.is_server_error(), "{status}");
    }
    if verdict.is_ok() {
        let upgrade = strip_hop_by_hop(request.headers_mut());
        let headers = request.headers();
        assert!(!headers.contains_key(TRANSFER_ENCODING), "{headers:?}");
        if !upgrade {
            assert!(!headers.contains_key(CONNECTION) && !headers.contains_key(UPGRADE), "{headers:?}");
        }
    }
});
